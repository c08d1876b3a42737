/* test_wsend.c — how an exec ended (wsend.h): the supervisor's reply
 * fields classified once for CLI exec, serve and mcp, as an object and in
 * words. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "wsend.h"

static sp_exec_end from(const char *reply, int status)
{
    json_t *r = json_loads(reply, 0, NULL);
    assert_non_null(r);
    sp_exec_end e;
    sp_ws_end_from_reply(r, status, &e);
    json_decref(r);
    return e;
}

static const char *ended(const sp_exec_end *e, json_t **o)
{
    *o = sp_ws_end_json(e);
    return json_string_value(json_object_get(*o, "ended"));
}

static void test_classes(void **state)
{
    (void)state;
    char buf[256];
    json_t *o;
    sp_exec_end e = from("{\"status\":3,\"timed_out\":false}", 3);
    assert_string_equal(ended(&e, &o), "exit");
    assert_int_equal(json_integer_value(json_object_get(o, "exit_code")), 3);
    assert_null(json_object_get(o, "text"));
    assert_string_equal(sp_exec_end_text(&e, buf, sizeof(buf)), "");
    json_decref(o);

    e = from("{\"status\":139,\"signal\":11}", 139);
    assert_string_equal(ended(&e, &o), "signal");
    assert_string_equal(json_string_value(json_object_get(o, "signal_name")),
                        "SIGSEGV");
    assert_string_equal(sp_exec_end_text(&e, buf, sizeof(buf)),
                        "killed by signal 11 (SIGSEGV)");
    json_decref(o);

    /* timed_out wins over the signal that carried it out */
    e = from("{\"status\":124,\"timed_out\":true,\"signal\":15}", 124);
    assert_string_equal(ended(&e, &o), "timeout");
    json_decref(o);

    e = from("{\"status\":137,\"signal\":9,\"oom\":true,"
             "\"memory_limit\":67108864}", 137);
    assert_string_equal(ended(&e, &o), "oom");
    assert_int_equal(json_integer_value(json_object_get(o, "limit_bytes")),
                     67108864);
    assert_string_equal(sp_exec_end_text(&e, buf, sizeof(buf)),
                        "killed: out of memory (limit 64 MiB)");
    json_decref(o);

    e = from("{\"status\":2,\"pids_refused\":3,\"pids_limit\":32}", 2);
    assert_string_equal(ended(&e, &o), "pids");
    assert_int_equal(json_integer_value(json_object_get(o, "refused_forks")), 3);
    assert_int_equal(json_integer_value(json_object_get(o, "limit")), 32);
    assert_string_equal(sp_exec_end_text(&e, buf, sizeof(buf)),
                        "failed: the process limit refused 3 forks (limit 32)");
    json_decref(o);

    /* a refused fork that the command got over: it exited 0 */
    e = from("{\"status\":0,\"pids_refused\":1}", 0);
    assert_string_equal(ended(&e, &o), "exit");
    assert_int_equal(json_integer_value(json_object_get(o, "refused_forks")), 1);
    json_decref(o);

    /* hostile or odd fields are ignored, never trusted as numbers */
    e = from("{\"status\":1,\"signal\":\"x\",\"memory_limit\":-5,"
             "\"pids_refused\":-1}", 1);
    assert_string_equal(ended(&e, &o), "exit");
    assert_int_equal(e.memory_limit, 0);
    json_decref(o);
    e = from("{\"status\":1,\"signal\":99999}", 1);
    assert_int_equal(e.signal, 0);

    e.how = SP_ENDED_CANCELLED;
    assert_string_equal(ended(&e, &o), "cancelled");
    assert_null(json_object_get(o, "exit_code"));
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
