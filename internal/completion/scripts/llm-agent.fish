# fish completion for llm-agent and llm-agent-client.
# Printed by `llm-agent-client completion fish`: save it as
# ~/.config/fish/completions/llm-agent-client.fish (and llm-agent.fish), or
# load it with  llm-agent-client completion fish | source
# Each TAB asks `llm-agent-client __complete`, which reads the real flags
# and, for provider names, the running agent. Loading it twice is harmless.

function __llm_agent_complete
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    set -l out (command llm-agent-client __complete (string replace -r '.*/' '' -- $tokens[1]) $tokens[2..-1] "$cur" 2>/dev/null)
    or return
    set -l head (string split -m 1 \t -- $out[1])
    switch $head[1]
        case files dirs
            set -l prefix "$head[2]"
            set -l value (string sub -s (math (string length -- "$prefix") + 1) -- "$cur")
            set -l found
            if test $head[1] = files
                set found (__fish_complete_path "$value")
            else
                set found (__fish_complete_directories "$value")
            end
            for f in $found
                printf '%s%s\n' "$prefix" "$f"
            end
        case command
            set -l at (math $head[2] + 2)
            complete -C (string join ' ' -- (string escape -- $tokens[$at..-1]) "$cur")
        case '*'
            printf '%s\n' $out[2..-1]
    end
end

complete -c llm-agent-client -e
complete -c llm-agent-client -f -a '(__llm_agent_complete)'
complete -c llm-agent -e
complete -c llm-agent -f -a '(__llm_agent_complete)'
