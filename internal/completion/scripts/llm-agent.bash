# bash completion for llm-agent and llm-agent-client.
# Printed by `llm-agent-client completion bash`; load it with
#   source <(llm-agent-client completion bash)
# Each TAB asks `llm-agent-client __complete`, which reads the real flags
# and, for provider names, the running agent. Loading it twice is harmless.

_llm_agent_complete() {
	# Rejoin the words bash split at = and : (--format=json, host:port),
	# using COMP_LINE: start maps each rejoined word to COMP_WORDS.
	local line=${COMP_LINE:0:COMP_POINT} glue=${COMP_LINE:+1}
	local -a words=() start=()
	local n=-1 i w ws
	for ((i = 0; i <= COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		ws=${line%%[![:space:]]*}
		line=${line:${#ws}}
		line=${line:${#w}}
		if ((n >= 0 && ${#ws} == 0)) && [[ -n $glue ]]; then
			words[n]+=$w
		else
			words[++n]=$w
			start[n]=$i
		fi
	done
	# bash replaces only its own current word (after the last = or :).
	local cur=${words[n]} keep=${COMP_WORDS[COMP_CWORD]}
	[[ -z ${keep//[=:]/} ]] && keep=

	local text
	text=$(command llm-agent-client __complete "${words[0]##*/}" "${words[@]:1}" 2>/dev/null) || return 0
	COMPREPLY=()
	_llm_agent_reply <<<"$text"
	local -a out=("${COMPREPLY[@]}")
	local head=${out[0]}
	COMPREPLY=()
	case ${head%%$'\t'*} in
	files)
		compopt -o filenames 2>/dev/null
		_llm_agent_reply < <(compgen -f -- "$keep")
		;;
	dirs)
		compopt -o filenames 2>/dev/null
		_llm_agent_reply < <(compgen -d -- "$keep")
		;;
	command)
		local at=$((${head#*$'\t'} + 1))
		if declare -F _command_offset >/dev/null; then
			_command_offset "${start[at]}"
		elif ((at == n)); then
			_llm_agent_reply < <(compgen -c -- "$keep")
		else
			compopt -o filenames 2>/dev/null
			_llm_agent_reply < <(compgen -f -- "$keep")
		fi
		;;
	*)
		local strip=$((${#cur} - ${#keep})) c
		for c in "${out[@]:1}"; do
			c=${c%%$'\t'*}
			COMPREPLY+=("${c:strip}")
		done
		;;
	esac
	return 0
}

# _llm_agent_reply adds the lines of its input to COMPREPLY (macOS's bash
# 3.2 has no mapfile).
_llm_agent_reply() {
	local line
	while IFS= read -r line; do
		COMPREPLY+=("$line")
	done
}

complete -F _llm_agent_complete llm-agent-client
complete -F _llm_agent_complete llm-agent
