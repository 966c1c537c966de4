# Shared shell helpers for scripts/*. Source it; it sets the repository root as $ROOT.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PATH="$ROOT/node_modules/.bin:$PATH"

if [[ -t 2 ]]; then
  _bold=$'\e[1m' _red=$'\e[31m' _green=$'\e[32m' _reset=$'\e[0m'
else
  _bold='' _red='' _green='' _reset=''
fi

say() { printf '%s==>%s %s\n' "$_bold" "$_reset" "$*" >&2; }
fail() { printf '%serror:%s %s\n' "$_red" "$_reset" "$*" >&2; exit 1; }
ok() { printf '%sok%s %s\n' "$_green" "$_reset" "$*" >&2; }

# The directory of the newest installed PostgreSQL server binaries (Debian keeps them off PATH).
pg_bin_dir() {
  local dir=${COVENANT_PG_BIN:-}
  [[ -n "$dir" ]] || dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n "$dir" && -x "$dir/initdb" ]] && echo "$dir"
}

# Runs a PostgreSQL server program as the postgres user when we are root (it refuses root).
as_pg_user() {
  if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Whether something listens on 127.0.0.1:$1.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
