# bash completion for rwkvcast and rwkvcastd: commands, and each command's
# long options as its --help lists them (so they never go stale).
# Installed as share/bash-completion/completions/rwkvcast (and rwkvcastd).
#
# SPDX-License-Identifier: MIT

_rwkvcast() {
    local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[0]} sub opts
    if [ "${cmd##*/}" = rwkvcastd ]; then
        opts=$("$cmd" --help 2>/dev/null | grep -o -- '--[a-z][a-z-]*' | sort -u)
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        [ ${#COMPREPLY[@]} -gt 0 ] || COMPREPLY=($(compgen -f -- "$cur"))
        return
    fi
    if [ "$COMP_CWORD" -eq 1 ]; then
        opts=$("$cmd" --help 2>/dev/null | awk '/^Commands:/ {on=1; next} on && !NF {exit} on {print $1}')
        COMPREPLY=($(compgen -W "$opts --help --version" -- "$cur"))
        return
    fi
    sub=${COMP_WORDS[1]}
    case $cur in
    -*)
        opts=$("$cmd" "$sub" --help 2>/dev/null | grep -o -- '--[a-z][a-z-]*' | sort -u)
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        ;;
    *)
        if [ "$sub" = ctl ]; then
            COMPREPLY=($(compgen -W "ping stats series get checkpoint forget reload" -- "$cur"))
        else
            COMPREPLY=($(compgen -f -- "$cur"))
        fi
        ;;
    esac
}
complete -F _rwkvcast rwkvcast rwkvcastd
