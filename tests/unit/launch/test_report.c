/* test_report.c — the report (report.h): the bounded denial table, the
 * outcome of a `run`, the summary lines; and the seccomp watch (seccomp.h):
 * the watched filter differs from the plain one only in its refusals, and
 * a refused call still gets the plain filter's errno, counted. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "policy.h"
#include "report.h"
#include "seccomp.h"
#include "util.h"

static struct sp_denial sys(const char *name)
{
    struct sp_denial d;
    memset(&d, 0, sizeof(d));
    d.kind = SP_DENIAL_SYSCALL;
    snprintf(d.what, sizeof(d.what), "%s", name);
    snprintf(d.rule, sizeof(d.rule), "seccomp default deny list");
    d.err = EPERM;
    return d;
}

static void test_denials_dedup_and_bound(void **state)
{
    (void)state;
    struct sp_denials *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    struct sp_denial a = sys("bpf"), b = sys("mount");
    for (int i = 0; i < 1000; i++)
        sp_denials_add(t, &a);
    sp_denials_add(t, &b);
    sp_denials_add(t, &a);
    assert_int_equal(t->n, 2);
    assert_int_equal(t->e[0].count, 1001);
    assert_int_equal(t->e[1].count, 1);
    assert_int_equal(t->total, 1002);
    /* the same call with another argument is another entry */
    struct sp_denial s1 = sys("socket"), s2 = sys("socket");
    s1.has_arg = s2.has_arg = true;
    s1.arg = 17;
    s2.arg = 40;
    sp_denials_add(t, &s1);
    sp_denials_add(t, &s2);
    assert_int_equal(t->n, 4);
    /* past the bound: counted as dropped, never stored */
    for (int i = 0; i < 200; i++) {
        struct sp_denial d = sys("x");
        snprintf(d.what, sizeof(d.what), "call%d", i);
        sp_denials_add(t, &d);
    }
    assert_int_equal(t->n, SP_MAX_REPORT_DENIALS);
    assert_int_equal(t->dropped, 200 - (SP_MAX_REPORT_DENIALS - 4));
    assert_int_equal(t->total, 1004 + 200);
    json_t *j = sp_denials_json(t);
    assert_int_equal(json_array_size(j), SP_MAX_REPORT_DENIALS);
    json_t *e0 = json_array_get(j, 0);
    assert_string_equal(json_string_value(json_object_get(e0, "syscall")),
                        "bpf");
    assert_string_equal(json_string_value(json_object_get(e0, "errno")),
                        "EPERM");
    assert_int_equal(json_integer_value(json_object_get(e0, "count")), 1001);
    json_decref(j);
    free(t);
}

static void test_end_from_run(void **state)
{
    (void)state;
    sp_stats st;
    sp_exec_end e;
    memset(&st, 0, sizeof(st));
    sp_end_from_run(&st, 3, 0, 0, &e);
    assert_int_equal(e.how, SP_ENDED_EXIT);
    assert_int_equal(e.exit_code, 3);
    sp_end_from_run(&st, 128 + SIGSEGV, 0, 0, &e);
    assert_int_equal(e.how, SP_ENDED_SIGNAL);
    assert_int_equal(e.signal, SIGSEGV);
    st.timed_out = true;
    sp_end_from_run(&st, 124, 0, 0, &e);
    assert_int_equal(e.how, SP_ENDED_TIMEOUT);
    st.timed_out = false;
    st.oom_killed = true;
    sp_end_from_run(&st, 137, 64 << 20, 0, &e);
    assert_int_equal(e.how, SP_ENDED_OOM);
    assert_int_equal(e.memory_limit, 64 << 20);
    char buf[128];
    assert_string_equal(sp_exec_end_text(&e, buf, sizeof(buf)),
                        "killed: out of memory (limit 64 MiB)");
    /* an OOM kill elsewhere while it exited on its own: its exit */
    sp_end_from_run(&st, 0, 64 << 20, 0, &e);
    assert_int_equal(e.how, SP_ENDED_EXIT);
    st.oom_killed = false;
    st.pids_refused = 4;
    sp_end_from_run(&st, 2, 0, 5, &e);
    assert_int_equal(e.how, SP_ENDED_PIDS);
    assert_string_equal(sp_exec_end_text(&e, buf, sizeof(buf)),
                        "failed: the process limit refused 4 forks (limit 5)");
    sp_end_from_run(&st, 0, 0, 5, &e);
    assert_int_equal(e.how, SP_ENDED_EXIT);
}

static void test_summary_lines(void **state)
{
    (void)state;
    json_t *r = json_loads(
        "{\"outcome\": {\"ended\": \"oom\", \"text\": \"killed: out of memory "
        "(limit 64 MiB)\"}, \"denials\": ["
        "{\"kind\": \"syscall\", \"syscall\": \"bpf\", \"rule\": \"seccomp "
        "default deny list\", \"count\": 2},"
        "{\"kind\": \"network\", \"host\": \"evil.example\", \"port\": 443, "
        "\"rule\": \"not in the allow list\", \"count\": 1},"
        "{\"kind\": \"syscall\", \"syscall\": \"mount\", \"rule\": \"x\", "
        "\"count\": 3}]}",
        0, NULL);
    assert_non_null(r);
    char *s = sp_report_summary(r);
    assert_string_equal(
        s, "sandbox: syscall bpf refused (seccomp default deny list) and 3 "
           "more syscall denials\n"
           "sandbox: network to evil.example:443 refused (not in the allow "
           "list)\n"
           "sandbox: killed: out of memory (limit 64 MiB)\n");
    free(s);
    json_decref(r);
    r = json_loads("{\"outcome\": {\"ended\": \"exit\"}, \"denials\": []}", 0,
                   NULL);
    s = sp_report_summary(r);
    assert_string_equal(s, "");
    free(s);
    json_decref(r);
}

static void test_file_why_depends_on_the_kernel(void **state)
{
    (void)state;
    char b[320];
    assert_non_null(strstr(sp_report_file_why(7, b, sizeof(b)),
                           "(ABI 7) writes audit records"));
    assert_non_null(strstr(sp_report_file_why(3, b, sizeof(b)),
                           "(ABI 3) has no audit records"));
    assert_non_null(strstr(sp_report_file_why(0, b, sizeof(b)), "EROFS"));
}

static void test_watched_variant_differs_only_in_refusals(void **state)
{
    (void)state;
    struct sp_seccomp_prog plain = {0}, w = {0};
    assert_int_equal(sp_seccomp_default_cached(false, &plain), 0);
    assert_int_equal(sp_seccomp_watched_variant(&plain, &w), 0);
    assert_int_equal(w.len, plain.len);
    int changed = 0, enosys = 0;
    for (unsigned i = 0; i < plain.len; i++) {
        const struct sock_filter *a = &plain.filter[i], *b = &w.filter[i];
        assert_int_equal(a->code, b->code);
        assert_int_equal(a->jt, b->jt);
        assert_int_equal(a->jf, b->jf);
        if (a->k == b->k) {
            if (a->code == (BPF_RET | BPF_K) &&
                a->k == (SECCOMP_RET_ERRNO | ENOSYS))
                enosys++; /* clone3 stays ENOSYS: libc's fallback */
            continue;
        }
        assert_int_equal(a->code, BPF_RET | BPF_K);
        assert_true(a->k == (SECCOMP_RET_ERRNO | EPERM) ||
                    a->k == (SECCOMP_RET_ERRNO | EAFNOSUPPORT));
        assert_int_equal(b->k, SECCOMP_RET_USER_NOTIF);
        changed++;
    }
    assert_true(changed > 0);
    assert_true(enosys > 0);
    sp_seccomp_prog_free(&plain);
    sp_seccomp_prog_free(&w);
}

/* In a child: the watched filter with the listener answered by a thread
 * of the same process; bpf() gets EPERM and socket(AF_PACKET)
 * EAFNOSUPPORT, as with the plain filter, and both are counted under the
 * child's session. Exit 0 when all held, else the failed step. */
static int watched_child(void)
{
    struct sp_seccomp_prog plain = {0}, w = {0};
    if (sp_seccomp_default_cached(false, &plain) < 0 ||
        sp_seccomp_watched_variant(&plain, &w) < 0)
        return 10;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return 11;
    int fd = -1;
    if (sp_seccomp_install_watched_here(&w, &plain, &fd) < 0)
        return 12;
    if (fd < 0)
        return 77; /* the kernel refused a listener: skip */
    struct sp_seccomp_bg *bg = sp_seccomp_bg_start(fd);
    if (!bg)
        return 13;
    uint64_t t0 = sp_now_us();
    for (int i = 0; i < 1000; i++) {
        errno = 0;
        if (syscall(SYS_bpf, 0, 0, 0) != -1 || errno != EPERM)
            return 14;
    }
    errno = 0;
    if (socket(AF_PACKET, SOCK_RAW, 0) != -1 || errno != EAFNOSUPPORT)
        return 15;
    /* an allowed call is untouched */
    if (getpid() <= 0)
        return 16;
    json_t *d = sp_seccomp_bg_take(bg, getsid(0), t0);
    json_t *a = json_object_get(d, "denials");
    if (json_array_size(a) != 2)
        return 17;
    json_t *e0 = json_array_get(a, 0), *e1 = json_array_get(a, 1);
    if (strcmp(json_string_value(json_object_get(e0, "syscall")), "bpf") ||
        json_integer_value(json_object_get(e0, "count")) != 1000 ||
        json_integer_value(json_object_get(e0, "errno")) != EPERM)
        return 18;
    if (strcmp(json_string_value(json_object_get(e1, "syscall")), "socket") ||
        json_integer_value(json_object_get(e1, "arg")) != AF_PACKET ||
        json_integer_value(json_object_get(e1, "errno")) != EAFNOSUPPORT)
        return 19;
    json_decref(d);
    /* taken: a second take is empty */
    d = sp_seccomp_bg_take(bg, getsid(0), t0);
    if (json_array_size(json_object_get(d, "denials")) != 0)
        return 20;
    json_decref(d);
    return 0;
}

static void test_watched_refusals_keep_their_errno(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(watched_child());
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) == 77)
        skip();
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_denials_dedup_and_bound),
        cmocka_unit_test(test_end_from_run),
        cmocka_unit_test(test_summary_lines),
        cmocka_unit_test(test_file_why_depends_on_the_kernel),
        cmocka_unit_test(test_watched_variant_differs_only_in_refusals),
        cmocka_unit_test(test_watched_refusals_keep_their_errno),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
