#!/bin/sh
# install-client.sh [ssh options] HOST
#
# Installs llm-agent-client @VERSION@ on HOST as ~/.local/bin/llm-agent-client,
# as the user ssh logs in as: no root and no Go needed there. It asks HOST
# for "uname -sm", takes the static linux build for that architecture from
# the release directory beside this script, and copies it over the same ssh
# into a temporary name that is renamed into place once complete (a client
# that is running keeps its old file). Options before HOST are passed to ssh
# as they are: -p PORT, -o OPTION, -J JUMP, -F CONFIG, -i KEY.
set -eu
me=install-client.sh
if [ $# -lt 1 ]; then
	echo "usage: sh install-client.sh [ssh options] HOST" >&2
	exit 2
fi
here=$(cd -- "$(dirname -- "$0")" && pwd)

if ! sm=$(ssh "$@" uname -sm </dev/null); then
	echo "$me: ssh $* uname -sm failed; check that ssh $* logs you in" >&2
	exit 1
fi
case $sm in
'Linux x86_64') arch=amd64 ;;
'Linux aarch64') arch=arm64 ;;
*)
	printf '%s: the server says it is "%s" (uname -sm); this release has llm-agent-client for Linux x86_64 and aarch64 only\n' \
		"$me" "$(printf '%s' "$sm" | tr -c '[:print:]' '?')" >&2
	exit 1
	;;
esac

bin=$here/llm-agent_@VERSION@_linux_$arch/llm-agent-client
if [ ! -f "$bin" ]; then
	echo "$me: $bin is missing; run the install-client.sh of a complete release directory" >&2
	exit 1
fi
size=$(($(wc -c <"$bin")))

# The only other command run on HOST. No single quotes in it: it goes
# through the login shell, whatever that is, as exec sh -c '...'.
remote='d="$HOME/.local/bin" && mkdir -p "$d" && t=$(mktemp "$d/.llm-agent-client.XXXXXX") && { { cat >"$t" && test $(($(wc -c <"$t"))) -eq SIZE && chmod 0755 "$t" && mv -f "$t" "$d/llm-agent-client"; } || { rm -f "$t"; exit 1; }; }'
remote=$(printf '%s' "$remote" | sed "s/SIZE/$size/")
if ! ssh "$@" "exec sh -c '$remote'" <"$bin"; then
	echo "$me: copying to the server failed; its ~/.local/bin/llm-agent-client is unchanged" >&2
	exit 1
fi
echo "$me: installed llm-agent-client @VERSION@ (linux/$arch) as ~/.local/bin/llm-agent-client on the server"
