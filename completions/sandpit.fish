# fish completion for sandpit(1): verbs, flags, workspace names (`sandpit
# ps --json`) and snapshot names (`sandpit snapshots NAME --json`), asked of
# sandpit at completion time.

function __sandpit_names
    command sandpit $argv --json 2>/dev/null | string match -r -a -g '"name": *"([^".][^"]*)"'
end

# The workspace named after the verb (or the verb and its sub-verb).
function __sandpit_ws
    set -l w (commandline -opc)
    set -l pos
    for a in $w[3..-1]
        string match -q -- '-*' $a; or set -a pos $a
    end
    echo $pos[1]
end

function __sandpit_npos
    set -l w (commandline -opc)
    set -l n 0
    for a in $w[3..-1]
        string match -q -- '-*' $a; or set n (math $n + 1)
    end
    echo $n
end

set -l verbs run policy doctor mcp serve create exec jobs wait logs ps stop start rm gc shell shells service files ls cat write stat patch import export cp diff reset snapshot snapshots restore fork pause resume checkpoint image net audit oci
set -l ws_verbs exec jobs wait logs stop start rm shell shells diff reset snapshots pause resume ls cat write stat patch import export restore fork checkpoint snapshot audit

complete -c sandpit -f
complete -c sandpit -n "not __fish_seen_subcommand_from $verbs" -a "$verbs"
complete -c sandpit -n "not __fish_seen_subcommand_from $verbs" -l help -l version
complete -c sandpit -n "__fish_seen_subcommand_from $ws_verbs; and test (__sandpit_npos) -eq 0" -a "(__sandpit_names ps)"
complete -c sandpit -n "__fish_seen_subcommand_from restore fork checkpoint; and test (__sandpit_npos) -eq 1" -a "(__sandpit_names snapshots (__sandpit_ws))"
complete -c sandpit -n "__fish_seen_subcommand_from service; and test (__sandpit_npos) -eq 0" -a "start status logs stop ls"
complete -c sandpit -n "__fish_seen_subcommand_from files; and test (__sandpit_npos) -eq 0" -a "ls cat write stat mkdir rm mv"
complete -c sandpit -n "__fish_seen_subcommand_from service files net; and test (__sandpit_npos) -eq 1" -a "(__sandpit_names ps)"
complete -c sandpit -n "__fish_seen_subcommand_from image; and test (__sandpit_npos) -eq 0" -a "import ls rm"
complete -c sandpit -n "__fish_seen_subcommand_from image; and __fish_seen_subcommand_from rm" -a "(__sandpit_names image ls)"
complete -c sandpit -n "__fish_seen_subcommand_from net; and test (__sandpit_npos) -eq 0" -a "log"
complete -c sandpit -n "__fish_seen_subcommand_from policy; and test (__sandpit_npos) -eq 0" -a "show"

# The policy flags of run, create, fork and policy show.
set -l pol "__fish_seen_subcommand_from run create fork policy"
for f in profile policy workspace ro rw tmpfs hide env env-pass cwd uid gid hostname rootfs image pass-fd timeout kill-after net net-policy net-log net-resolver memory pids cpus tmp-size nofile fsize disk inodes tcp-ports seccomp-profile require stats-json
    complete -c sandpit -n $pol -l $f -r
end
for f in workspace-ro no-workspace clear-env no-userns net-allow-private no-landlock no-seccomp allow-ptrace allow-system-ro stats verbose quiet help
    complete -c sandpit -n $pol -l $f
end
complete -c sandpit -n "__fish_seen_subcommand_from run" -l report -r
complete -c sandpit -n "__fish_seen_subcommand_from run" -l no-report
complete -c sandpit -n $pol -s v
complete -c sandpit -n $pol -s q
complete -c sandpit -n $pol -l profile -x -a "minimal standard dev"
complete -c sandpit -n $pol -l net -x -a "none host allow:"
complete -c sandpit -n $pol -l image -x -a "(__sandpit_names image ls)"

set -l c "__fish_seen_subcommand_from create"
for f in idle-timeout max-lifetime from publish post-create secret
    complete -c sandpit -n $c -l $f -r
end
complete -c sandpit -n $c -l read-only-system
complete -c sandpit -n $c -l allow-post-create
complete -c sandpit -n $c -s p -r

set -l c "__fish_seen_subcommand_from exec"
complete -c sandpit -n $c -s i -l interactive
complete -c sandpit -n $c -s d -l detach
complete -c sandpit -n $c -s t -l tty
complete -c sandpit -n $c -s e -l env -r
complete -c sandpit -n $c -s w -l workdir -r
complete -c sandpit -n $c -l timeout -r
complete -c sandpit -n $c -l secret-env -r
complete -c sandpit -n $c -l no-wait
complete -c sandpit -n $c -l report -r
complete -c sandpit -n $c -l changes

complete -c sandpit -n "__fish_seen_subcommand_from wait" -l timeout -r
complete -c sandpit -n "__fish_seen_subcommand_from logs" -s f -l follow
complete -c sandpit -n "__fish_seen_subcommand_from logs" -l stdout
complete -c sandpit -n "__fish_seen_subcommand_from logs" -l stderr
complete -c sandpit -n "__fish_seen_subcommand_from ps jobs shells diff snapshots doctor stat import snapshot image net audit service files ls" -l json
complete -c sandpit -n "__fish_seen_subcommand_from start restore" -l secret -r
complete -c sandpit -n "__fish_seen_subcommand_from rm" -s f -l force
complete -c sandpit -n "__fish_seen_subcommand_from shell" -s e -l env -r
complete -c sandpit -n "__fish_seen_subcommand_from shell" -s w -l workdir -r
complete -c sandpit -n "__fish_seen_subcommand_from shell" -l detach-key -r
set -l c "__fish_seen_subcommand_from service"
for f in cwd secret-env ready ready-timeout tail grace
    complete -c sandpit -n $c -l $f -r
end
complete -c sandpit -n $c -l restart -x -a "no on-failure"
complete -c sandpit -n $c -s w -s e -r
complete -c sandpit -n $c -l env -r
complete -c sandpit -n $c -s n -r
complete -c sandpit -n $c -s f -l follow
complete -c sandpit -n $c -l stderr
set -l c "__fish_seen_subcommand_from files ls cat write patch export"
complete -c sandpit -n $c -s R
complete -c sandpit -n $c -s r
complete -c sandpit -n $c -s p
complete -c sandpit -n $c -l offset -r
complete -c sandpit -n $c -l length -r
complete -c sandpit -n $c -l mode -r
complete -c sandpit -n $c -l no-sync
complete -c sandpit -n $c -l no-replace
complete -c sandpit -n $c -l dry-run
complete -c sandpit -n $c -l gzip -s z
complete -c sandpit -n $c -l diff
complete -c sandpit -n "__fish_seen_subcommand_from checkpoint" -l processes
complete -c sandpit -n "__fish_seen_subcommand_from image" -l name -r
complete -c sandpit -n "__fish_seen_subcommand_from net audit" -s f -l follow
set -l c "__fish_seen_subcommand_from serve"
complete -c sandpit -n $c -s s -l socket -r
complete -c sandpit -n $c -s g -l group -r
complete -c sandpit -n "__fish_seen_subcommand_from serve mcp" -s p -l policy -r
complete -c sandpit -n "__fish_seen_subcommand_from serve mcp" -l max-output -r
complete -c sandpit -n "__fish_seen_subcommand_from serve mcp" -l pool -r -d "keep N workspaces warm"
complete -c sandpit -n "__fish_seen_subcommand_from mcp" -s t -l tools -x -a "core files full"
complete -c sandpit -n "__fish_seen_subcommand_from serve mcp" -s h -l help
complete -c sandpit -n "__fish_seen_subcommand_from run" -l pool -d "one-shot workspace from the warm pool"
complete -c sandpit -n "__fish_seen_subcommand_from oci" -l root -r
complete -c sandpit -n "__fish_seen_subcommand_from oci" -l log -r
complete -c sandpit -n "__fish_seen_subcommand_from oci" -l log-format -r -a "text json"
complete -c sandpit -n "__fish_seen_subcommand_from oci" -l systemd-cgroup
