"""Auth: 0.9 OAuth2 client credentials with expiring tokens, 0.10 API keys."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from httpx_ws import WebSocketUpgradeError, aconnect_ws

from tests.server.conftest import StartServer

pytestmark = pytest.mark.anyio

CREDS = {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "s3cret"}


async def test_oauth_client_credentials(start_server: StartServer) -> None:
    server = await start_server(client_id="cid", client_secret="s3cret", token_ttl_seconds=1)
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/v1/config")).status_code == 200  # public
        anonymous = await http.get("/v1/default/boxes")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"] == {
            **anonymous.json()["error"],
            "type": "UnauthorizedError",
            "code": 401,
        }
        wrong = await http.post("/v1/oauth/tokens", data={**CREDS, "client_secret": "nope"})
        assert wrong.status_code == 401
        issued = await http.post("/v1/oauth/tokens", data=CREDS)
        assert issued.status_code == 200, issued.text
        token = issued.json()
        assert token["token_type"] == "bearer" and token["expires_in"] == 1
        auth = {"authorization": f"Bearer {token['access_token']}"}
        assert (await http.get("/v1/default/boxes", headers=auth)).status_code == 200
        await asyncio.sleep(1.1)
        expired = await http.get("/v1/default/boxes", headers=auth)
        assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
        fresh = (await http.post("/v1/oauth/tokens", data=CREDS)).json()["access_token"]
        ok = await http.get("/v1/default/boxes", headers={"authorization": f"Bearer {fresh}"})
        assert ok.status_code == 200
        assert server.auth.tokens_issued == 2
        # The secret never shows up in what the server says.
        assert "s3cret" not in repr(server.config) and "s3cret" not in wrong.text


async def test_api_key_guards_0_10_routes_and_attach(start_server: StartServer) -> None:
    server = await start_server(api_key="key-1")
    async with httpx.AsyncClient(base_url=server.url) as http:
        refused = await http.get("/v1/boxes")
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "AuthError"
        assert refused.json()["error"]["code"] == "unauthenticated"
        assert (
            await http.get("/v1/me", headers={"authorization": "Bearer bad"})
        ).status_code == 401
        auth = {"authorization": "Bearer key-1"}
        me = (await http.get("/v1/me", headers=auth)).json()
        assert me["principal_type"] == "service_account" and "boxes:exec" in me["scopes"]
        await http.post("/v1/boxes", json={"name": "a"}, headers=auth)
        eid = (await http.post("/v1/boxes/a/exec", json={"command": "true"}, headers=auth)).json()[
            "execution_id"
        ]
        with pytest.raises(WebSocketUpgradeError) as denied:
            async with aconnect_ws(f"{server.url}/v1/boxes/a/executions/{eid}/attach", http):
                pass
        assert denied.value.response.status_code == 401
        async with aconnect_ws(
            f"{server.url}/v1/boxes/a/executions/{eid}/attach", http, headers=auth
        ) as ws:
            assert '"exit"' in (await ws.receive_text())
        # 0.9 routes stay open: no client credentials configured.
        assert (await http.get("/v1/default/boxes")).status_code == 200
