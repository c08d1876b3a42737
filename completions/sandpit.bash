# bash completion for sandpit(1): verbs, flags, workspace names (from
# `sandpit ps --json`) and snapshot names (from `sandpit snapshots NAME
# --json`), asked of sandpit at completion time.

_sandpit_policy_flags="--profile --policy --workspace --workspace-ro --no-workspace
 --ro --rw --tmpfs --hide --env --env-pass --clear-env --cwd --uid --gid
 --no-userns --hostname --rootfs --image --pass-fd --timeout --kill-after --net
 --net-policy --net-allow-private --net-log --net-resolver --memory --pids --cpus
 --tmp-size --nofile --fsize --disk --inodes --tcp-ports --no-landlock
 --no-seccomp --seccomp-profile --allow-ptrace --allow-system-ro --require --stats --stats-json --report --no-report --verbose -v
 --quiet -q --help"

_sandpit_verbs="run policy doctor mcp serve create exec jobs wait logs ps stop start rm gc shell
 shells service files ls cat write stat patch import export cp diff reset
 snapshot snapshots restore fork pause resume checkpoint image net audit oci"

# Names from a JSON listing: every "name": "..." value.
_sandpit_names() {
    "${_sandpit_bin:-sandpit}" "$@" --json 2>/dev/null |
        grep -o '"name": *"[^".][^"]*"' | sed 's/.*"\([^"]*\)"$/\1/'
}

# The flags of one verb (sub: its sub-verb, for service, files, image, net).
_sandpit_flags() { # verb sub
    case "$1" in
    run) echo "$_sandpit_policy_flags --pool" ;;
    fork) echo "$_sandpit_policy_flags" ;;
    policy) echo "$_sandpit_policy_flags" ;;
    create) echo "$_sandpit_policy_flags --idle-timeout --max-lifetime --from
        --read-only-system --publish -p --post-create --allow-post-create --secret" ;;
    exec) echo "-i --interactive -t --tty -d --detach -e --env -w --workdir --timeout --secret-env --no-wait --report --changes" ;;
    jobs) echo "--json" ;;
    wait) echo "--timeout" ;;
    logs) echo "--follow -f --stdout --stderr" ;;
    ps|shells|diff|snapshots|doctor|stat) echo "--json" ;;
    start) echo "--secret" ;;
    rm) echo "-f --force" ;;
    shell) echo "-e --env -w --workdir --detach-key --close" ;;
    service)
        case "$2" in
        start) echo "--cwd -w -e --env --secret-env --ready --ready-timeout --restart" ;;
        status|ls) echo "--json" ;;
        logs) echo "--tail -n --follow -f --stderr" ;;
        stop) echo "--grace" ;;
        esac ;;
    files)
        case "$2" in
        ls) echo "-R --json" ;; cat) echo "--offset --length" ;;
        write) echo "--mode -p --no-sync" ;; stat) echo "--json" ;;
        mkdir) echo "-p --mode" ;; rm) echo "-r" ;; mv) echo "--no-replace" ;;
        esac ;;
    ls) echo "-R --json" ;;
    cat) echo "--offset --length" ;;
    write) echo "--mode -p --no-sync" ;;
    patch) echo "-p --dry-run --json" ;;
    import) echo "--json" ;;
    export) echo "--gzip -z --diff" ;;
    snapshot) echo "--json" ;;
    restore) echo "--json --secret" ;;
    checkpoint) echo "--processes" ;;
    image) case "$2" in import) echo "--name" ;; ls) echo "--json" ;; esac ;;
    net|audit) echo "--follow -f --json" ;;
    oci) echo "--root --log --log-format --systemd-cgroup" ;;
    serve) echo "--socket -s --group -g --policy -p --max-output --pool --help -h" ;;
    mcp) echo "--policy -p --max-output --pool --tools -t --help -h" ;;
    esac
}

_sandpit() {
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}
        words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
    fi
    local _sandpit_bin=${words[0]}
    if [ "$cword" -eq 1 ]; then
        mapfile -t COMPREPLY < <(compgen -W "$_sandpit_verbs --help --version" -- "$cur")
        return
    fi
    local verb=${words[1]} sub="" i
    # Everything after a -- is the sandboxed command's.
    for ((i = 2; i < cword; i++)); do
        [ "${words[i]}" = "--" ] && { mapfile -t COMPREPLY < <(compgen -c -- "$cur"); return; }
    done
    # Positional words so far (flags and their values left out roughly:
    # a word after a flag that takes a value is that value).
    local pos=() w
    for ((i = 2; i < cword; i++)); do
        w=${words[i]}
        case "$w" in -*) continue ;; esac
        pos+=("$w")
    done
    case "$verb" in service|files|image|net|policy|snapshot)
        sub=${pos[0]:-} ;;
    esac
    case "$prev" in
    --profile) mapfile -t COMPREPLY < <(compgen -W "minimal standard dev" -- "$cur"); return ;;
    --net) mapfile -t COMPREPLY < <(compgen -W "none host allow:" -- "$cur"); return ;;
    --restart) mapfile -t COMPREPLY < <(compgen -W "no on-failure" -- "$cur"); return ;;
    --image) mapfile -t COMPREPLY < <(compgen -W "$(_sandpit_names image ls)" -- "$cur"); return ;;
    --policy|--workspace|--ro|--rw|--rootfs|--from|--seccomp-profile|--net-policy|--net-log|--net-resolver|--stats-json|--report|--socket|-s)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
    esac
    if [[ "$cur" == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_sandpit_flags "$verb" "$sub")" -- "$cur")
        return
    fi
    local n=${#pos[@]} words_now=""
    case "$verb" in
    service)
        if [ "$n" -eq 0 ]; then words_now="start status logs stop ls"
        elif [ "$n" -eq 1 ]; then words_now=$(_sandpit_names ps)
        elif [ "$n" -eq 2 ] && [ "$sub" != start ] && [ "$sub" != ls ]; then
            words_now=$(_sandpit_names service ls "${pos[1]}")
        fi ;;
    files)
        if [ "$n" -eq 0 ]; then words_now="ls cat write stat mkdir rm mv"
        elif [ "$n" -eq 1 ]; then words_now=$(_sandpit_names ps); fi ;;
    image)
        if [ "$n" -eq 0 ]; then words_now="import ls rm"
        elif [ "$sub" = rm ] && [ "$n" -eq 1 ]; then words_now=$(_sandpit_names image ls)
        elif [ "$sub" = import ]; then mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return
        fi ;;
    net)
        if [ "$n" -eq 0 ]; then words_now="log"
        elif [ "$n" -eq 1 ]; then words_now=$(_sandpit_names ps); fi ;;
    policy) [ "$n" -eq 0 ] && words_now="show" ;;
    snapshot)
        if [ "$n" -eq 0 ]; then words_now="rm $(_sandpit_names ps)"
        elif [ "$sub" = rm ] && [ "$n" -eq 1 ]; then words_now=$(_sandpit_names ps)
        elif [ "$sub" = rm ] && [ "$n" -eq 2 ]; then words_now=$(_sandpit_names snapshots "${pos[1]}")
        fi ;;
    restore|fork)
        if [ "$n" -eq 0 ]; then words_now=$(_sandpit_names ps)
        elif [ "$n" -eq 1 ]; then words_now=$(_sandpit_names snapshots "${pos[0]}"); fi ;;
    checkpoint)
        if [ "$n" -eq 0 ]; then words_now=$(_sandpit_names ps)
        elif [ "$n" -eq 1 ]; then words_now=$(_sandpit_names snapshots "${pos[0]}"); fi ;;
    exec|jobs|wait|logs|stop|start|rm|shell|shells|diff|reset|snapshots|pause|resume|ls|cat|write|stat|patch|import|export|audit)
        [ "$n" -eq 0 ] && words_now=$(_sandpit_names ps) ;;
    cp)
        mapfile -t COMPREPLY < <(compgen -W "$(_sandpit_names ps | sed 's/$/:/')" -- "$cur")
        mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -f -- "$cur")
        compopt -o nospace 2>/dev/null
        return ;;
    run|create) [ "$verb" = run ] && { mapfile -t COMPREPLY < <(compgen -c -- "$cur"); return; } ;;
    esac
    mapfile -t COMPREPLY < <(compgen -W "$words_now" -- "$cur")
}
complete -F _sandpit sandpit
