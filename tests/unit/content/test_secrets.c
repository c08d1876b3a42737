/* test_secrets.c — a workspace's secret set: names, bounds and refusals;
 * --secret loading (@FILE, env:VAR, inline values refused); the names
 * record of the state directory; the windowed redaction of file reads
 * (consecutive windows put together equal the whole file redacted by the
 * streaming redactor); the ring writer at chunk boundaries. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "redact.h"
#include "ring.h"
#include "secrets.h"

static struct sp_secrets *mk(const char *const *kv, size_t n)
{
    sp_secret v[8];
    for (size_t i = 0; i < n; i++)
        v[i] = (sp_secret){kv[2 * i], kv[2 * i + 1], strlen(kv[2 * i + 1])};
    struct sp_secrets *s = NULL;
    sp_error err = {0};
    assert_int_equal(sp_secrets_new(v, n, &s, &err), 0);
    return s;
}

static void names_and_bounds(void **state)
{
    (void)state;
    assert_true(sp_secret_name_ok("TOKEN"));
    assert_true(sp_secret_name_ok("_a9"));
    assert_false(sp_secret_name_ok("9a"));
    assert_false(sp_secret_name_ok(""));
    assert_false(sp_secret_name_ok("A-B"));
    assert_false(sp_secret_name_ok("A.B"));
    assert_false(sp_secret_name_ok("../x"));
    char longname[80];
    memset(longname, 'A', sizeof(longname));
    longname[64] = '\0';
    assert_true(sp_secret_name_ok(longname));
    longname[64] = 'A';
    longname[65] = '\0';
    assert_false(sp_secret_name_ok(longname));

    struct sp_secrets *s = NULL;
    sp_error err = {0};
    sp_secret shortv = {"A", "abc", 3};
    assert_int_equal(sp_secrets_new(&shortv, 1, &s, &err), -EINVAL);
    assert_int_equal(err.kind, SP_ERR_USAGE);
    assert_non_null(strstr(err.message, "shorter than 4"));
    assert_null(s);
    sp_secret bad = {"1A", "abcd", 4};
    assert_int_equal(sp_secrets_new(&bad, 1, &s, &err), -EINVAL);
    sp_secret dup[2] = {{"A", "abcd", 4}, {"A", "efgh", 4}};
    assert_int_equal(sp_secrets_new(dup, 2, &s, &err), -EINVAL);
    assert_non_null(strstr(err.message, "twice"));
    char *big = calloc(1, SP_SECRET_MAX_LEN + 1);
    memset(big, 'x', SP_SECRET_MAX_LEN + 1);
    sp_secret bigv = {"B", big, SP_SECRET_MAX_LEN + 1};
    assert_int_equal(sp_secrets_new(&bigv, 1, &s, &err), -EINVAL);
    bigv.len = SP_SECRET_MAX_LEN;
    assert_int_equal(sp_secrets_new(&bigv, 1, &s, &err), 0);
    assert_int_equal(s->n, 1);
    sp_secrets_free(s);
    free(big);
    sp_secret many[SP_MAX_SECRETS + 1];
    char names[SP_MAX_SECRETS + 1][8];
    for (int i = 0; i <= SP_MAX_SECRETS; i++) {
        snprintf(names[i], sizeof(names[i]), "S%d", i);
        many[i] = (sp_secret){names[i], "value", 5};
    }
    assert_int_equal(sp_secrets_new(many, SP_MAX_SECRETS + 1, &s, &err),
                     -E2BIG);
    assert_int_equal(sp_secrets_new(NULL, 0, &s, &err), 0);
    assert_null(s);
    sp_secrets_free(NULL);

    static const char *const kv[] = {"TOKEN", "hunter22", "KEY", "s3cr3t!"};
    s = mk(kv, 2);
    assert_non_null(sp_secrets_find(s, "KEY"));
    assert_null(sp_secrets_find(s, "NOPE"));
    assert_int_equal(s->total, 15);
    assert_true(sp_secrets_tmpfs_size(s) >= 15);
    sp_secrets_free(s);
}

static void load(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_secrets.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/tok", dir);
    FILE *f = fopen(path, "w");
    fputs("s3cret-value\n", f);
    fclose(f);
    char spec[300];
    snprintf(spec, sizeof(spec), "TOKEN=@%s", path);
    char *name = NULL;
    void *val = NULL;
    size_t len = 0;
    sp_error err = {0};
    assert_int_equal(sp_secret_load(spec, &name, &val, &len, &err), 0);
    assert_string_equal(name, "TOKEN");
    assert_int_equal(len, 12); /* the trailing newline dropped */
    assert_memory_equal(val, "s3cret-value", 12);
    free(name);
    sp_secret_value_free(val, len);

    setenv("TEST_SECRET_VAR", "from-the-env", 1);
    assert_int_equal(sp_secret_load("E=env:TEST_SECRET_VAR", &name, &val,
                                    &len, &err), 0);
    assert_int_equal(len, 12);
    free(name);
    sp_secret_value_free(val, len);

    /* refusals: inline value, no '=', bad name, missing file or var,
     * a directory, too short */
    assert_int_equal(sp_secret_load("A=plainvalue", &name, &val, &len, &err),
                     -EINVAL);
    assert_non_null(strstr(err.message, "@FILE or env:VAR"));
    assert_int_equal(sp_secret_load("A", &name, &val, &len, &err), -EINVAL);
    assert_int_equal(sp_secret_load("9A=@/etc/hostname", &name, &val, &len,
                                    &err), -EINVAL);
    assert_int_equal(sp_secret_load("A=@/nonexistent/x", &name, &val, &len,
                                    &err), -ENOENT);
    assert_int_equal(err.kind, SP_ERR_USAGE);
    assert_int_equal(sp_secret_load("A=env:NO_SUCH_VAR_HERE", &name, &val,
                                    &len, &err), -ENOENT);
    snprintf(spec, sizeof(spec), "A=@%s", dir);
    assert_int_equal(sp_secret_load(spec, &name, &val, &len, &err), -EISDIR);
    setenv("TEST_SECRET_SHORT", "abc", 1);
    assert_int_equal(sp_secret_load("A=env:TEST_SECRET_SHORT", &name, &val,
                                    &len, &err), -EINVAL);
    assert_non_null(strstr(err.message, "shorter"));
    /* one byte past the bound */
    f = fopen(path, "w");
    for (int i = 0; i < SP_SECRET_MAX_LEN + 1; i++)
        fputc('x', f);
    fclose(f);
    snprintf(spec, sizeof(spec), "A=@%s", path);
    assert_int_equal(sp_secret_load(spec, &name, &val, &len, &err), -EINVAL);
    assert_null(name);
    unlink(path);
    rmdir(dir);
}

static void names_record(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_secrets.XXXXXX";
    assert_non_null(mkdtemp(dir));
    int wsfd = open(dir, O_RDONLY | O_DIRECTORY);
    sp_error err = {0};
    /* nothing recorded: anything goes */
    assert_int_equal(sp_secrets_check_names(wsfd, "w", NULL, &err), 0);
    static const char *const kv[] = {"TOKEN", "hunter22", "KEY", "s3cr3t!"};
    struct sp_secrets *s = mk(kv, 2);
    assert_int_equal(sp_secrets_save_names(wsfd, s, &err), 0);
    /* only names on disk */
    char buf[256] = {0};
    int fd = openat(wsfd, SP_SECRETS_NAMES_FILE, O_RDONLY);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
    close(fd);
    assert_string_equal(buf, "TOKEN\nKEY\n");
    assert_int_equal(sp_secrets_check_names(wsfd, "w", s, &err), 0);
    assert_int_equal(sp_secrets_check_names(wsfd, "w", NULL, &err), -EINVAL);
    assert_non_null(strstr(err.message, "TOKEN, KEY"));
    struct sp_secrets *one = mk(kv, 1);
    assert_int_equal(sp_secrets_check_names(wsfd, "w", one, &err), -EINVAL);
    assert_non_null(strstr(err.message, "for KEY"));
    assert_int_equal(sp_secrets_save_names(wsfd, NULL, &err), 0);
    assert_int_equal(faccessat(wsfd, SP_SECRETS_NAMES_FILE, F_OK, 0), -1);
    sp_secrets_free(s);
    sp_secrets_free(one);
    close(wsfd);
    rmdir(dir);
}

/* Windows of every size put together read as the whole text redacted. */
static void windows(void **state)
{
    (void)state;
    static const char *const kv[] = {"TOKEN", "hunter22", "KEY", "hunt",
                                     "LONG", "abcabcabcabd"};
    struct sp_secrets *s = mk(kv, 3);
    size_t ctx = 11; /* the longest value - 1 */
    srand(7);
    for (int round = 0; round < 200; round++) {
        char text[600];
        size_t n = 0;
        static const char *const bits[] = {"hunter22", "hunt", "hun",
                                           "abcabcabcabd", "abcabc", "x",
                                           "\n", "hunter2", "\0zz"};
        while (n < 500) {
            const char *b = bits[rand() % 9];
            size_t bl = b[0] ? strlen(b) : 3;
            memcpy(text + n, b, bl);
            n += bl;
        }
        char *want = NULL;
        size_t wl = 0;
        assert_int_equal(sp_redact_buffer(s->redact, text, n, &want, &wl), 0);
        size_t win = 1 + (size_t)(rand() % 64);
        char *got = malloc(wl + 1);
        size_t gl = 0;
        for (size_t o = 0; o < n; o += win) {
            size_t w = win < n - o ? win : n - o;
            size_t pre = o < ctx ? o : ctx;
            size_t end = o + w + ctx < n ? o + w + ctx : n;
            char *r = NULL;
            size_t rl = 0;
            int rc = sp_secrets_redact_window(s, text + o - pre, end - o + pre,
                                              pre, w, &r, &rl);
            assert_true(rc >= 0);
            if (rc == 0) {
                r = text + o;
                rl = w;
            }
            assert_true(gl + rl <= wl);
            memcpy(got + gl, r, rl);
            gl += rl;
            if (rc == 1)
                free(r);
        }
        assert_int_equal(gl, wl);
        assert_memory_equal(got, want, wl);
        free(got);
        free(want);
    }
    /* no value: nothing allocated */
    char *r = (char *)1;
    size_t rl = 7;
    assert_int_equal(sp_secrets_redact_window(s, "plain text", 10, 0, 10, &r,
                                              &rl), 0);
    assert_null(r);
    assert_int_equal(rl, 0);
    sp_secrets_free(s);
}

/* The agent's ring writer: a value split across two reads is redacted;
 * held-back bytes come out at the end. */
static void ring_split(void **state)
{
    (void)state;
    static const char *const kv[] = {"TOKEN", "hunter22"};
    struct sp_secrets *s = mk(kv, 1);
    sp_secrets_agent_set(s);
    struct sp_ring r;
    assert_int_equal(sp_ring_init(&r, 4096), 0);
    struct sp_redact_stream *rs = NULL;
    sp_secrets_ring_write(&rs, &r, "pass=hunt", 9);
    sp_secrets_ring_write(&rs, &r, "er22 ok hun", 11);
    char out[256];
    size_t n = sp_ring_read(&r, 0, sizeof(out), out, NULL, NULL);
    out[n] = '\0';
    assert_string_equal(out, "pass=[REDACTED:TOKEN] ok "); /* "hun" held */
    sp_secrets_ring_end(&rs, &r);
    assert_null(rs);
    n = sp_ring_read(&r, 0, sizeof(out), out, NULL, NULL);
    out[n] = '\0';
    assert_string_equal(out, "pass=[REDACTED:TOKEN] ok hun");
    /* none set: bytes pass as they are */
    sp_secrets_agent_set(NULL);
    sp_secrets_ring_write(&rs, &r, "hunter22", 8);
    assert_null(rs);
    n = sp_ring_read(&r, 0, sizeof(out), out, NULL, NULL);
    out[n] = '\0';
    assert_string_equal(out, "pass=[REDACTED:TOKEN] ok hunhunter22");
    sp_ring_free(&r);
    sp_secrets_free(s);
}

/* JSON string values (the egress log) are redacted; keys, numbers and
 * structure stay; a value that cuts a UTF-8 character makes a marker. */
static void json_values(void **state)
{
    (void)state;
    static const char *const kv[] = {"TOKEN", "hunter22", "U", "\xc3\xa9t\xc3"};
    struct sp_secrets *s = mk(kv, 2);
    json_t *v = json_pack("{s:[{s:s,s:i,s:s}],s:s,s:s}", "events", "host",
                          "hunter22.evil.example", "port", 443, "method",
                          "CONNECT", "hunter22", "plain", "u",
                          "x\xc3\xa9t\xc3\xa9y");
    sp_secrets_redact_json(s, v);
    char *d = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(d, "{\"events\":[{\"host\":\"[REDACTED:TOKEN].evil."
                           "example\",\"method\":\"CONNECT\",\"port\":443}],"
                           "\"hunter22\":\"plain\",\"u\":\"[REDACTED]\"}");
    free(d);
    json_decref(v);
    sp_secrets_redact_json(NULL, NULL);
    sp_secrets_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_and_bounds),
        cmocka_unit_test(load),
        cmocka_unit_test(names_record),
        cmocka_unit_test(windows),
        cmocka_unit_test(ring_split),
        cmocka_unit_test(json_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
