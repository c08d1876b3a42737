/* proxy_test_main.c — runs the egress proxy on a loopback port for the
 * integration tests (tests/integration/test_proxy_module.py), embedded in a
 * poll loop the way the supervisor embeds it.
 *
 *   proxy_test [--listen 127.0.0.1:0] [--allow LIST | --policy FILE]
 *              [--allow-private] [--idle-ms N] [--connect-ms N]
 *              [--resolve-ms N] [--header-max N] [--max-conns N]
 *
 * Prints "PORT <n>" once listening; one JSON line per request event on
 * stderr; on SIGTERM/SIGINT prints "RING <events> <last seq>" and exits 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"

/* Append "k":"v", to a line, escaping quotes and backslashes. */
static void json_str(char *line, size_t len, const char *k, const char *v)
{
    size_t o = strlen(line);
    int n = snprintf(line + o, len - o, "\"%s\":\"", k);
    o += n > 0 ? (size_t)n : 0;
    for (; *v && o + 4 < len; v++) {
        if (*v == '"' || *v == '\\')
            line[o++] = '\\';
        line[o++] = *v;
    }
    snprintf(line + o, len - o, "\",");
}

/* One JSON line per event, written with a single write() so a reader never
 * sees half a line. */
static void log_event(void *ctx, const struct sp_proxy_event *ev)
{
    static const char *const dec[] = {"allowed", "denied", "failed"};
    int fd = *(int *)ctx;
    char line[4096];
    snprintf(line, sizeof(line), "{\"seq\":%llu,", (unsigned long long)ev->seq);
    json_str(line, sizeof(line), "client", ev->client);
    json_str(line, sizeof(line), "method", ev->method);
    json_str(line, sizeof(line), "host", ev->host);
    size_t o = strlen(line);
    snprintf(line + o, sizeof(line) - o, "\"port\":%u,", ev->port);
    json_str(line, sizeof(line), "decision",
             ev->decision >= 0 && ev->decision <= 2 ? dec[ev->decision] : "?");
    o = strlen(line);
    snprintf(line + o, sizeof(line) - o, "\"status\":%d,", ev->status);
    json_str(line, sizeof(line), "rule", ev->rule);
    json_str(line, sizeof(line), "reason", ev->reason);
    json_str(line, sizeof(line), "upstream", ev->upstream);
    o = strlen(line);
    snprintf(line + o, sizeof(line) - o, "\"up\":%llu,\"down\":%llu}\n",
             (unsigned long long)ev->bytes_up, (unsigned long long)ev->bytes_down);
    (void)!write(fd, line, strlen(line));
}

static int listen_on(const char *spec)
{
    char host[128];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof(host))
        return -1;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 128) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    (void)n;
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"allow", required_argument, NULL, 'a'},
        {"policy", required_argument, NULL, 'P'},
        {"allow-private", no_argument, NULL, 'p'},
        {"idle-ms", required_argument, NULL, 'i'},
        {"connect-ms", required_argument, NULL, 'c'},
        {"resolve-ms", required_argument, NULL, 'r'},
        {"header-max", required_argument, NULL, 'h'},
        {"max-conns", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    const char *listen_spec = "127.0.0.1:0", *allow = NULL, *policy = NULL;
    bool allow_private = false;
    long idle = -1, conn = -1, resolve = -1, hmax = -1, maxc = -1;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'l': listen_spec = optarg; break;
        case 'a': allow = optarg; break;
        case 'P': policy = optarg; break;
        case 'p': allow_private = true; break;
        case 'i': idle = atol(optarg); break;
        case 'c': conn = atol(optarg); break;
        case 'r': resolve = atol(optarg); break;
        case 'h': hmax = atol(optarg); break;
        case 'm': maxc = atol(optarg); break;
        default:
            fprintf(stderr, "usage: see the top of proxy_test_main.c\n");
            return 2;
        }
    }
    struct sp_proxy_config cfg;
    sp_error err;
    memset(&err, 0, sizeof(err));
    int r = 0;
    if (policy) {
        char *text = read_file(policy);
        if (!text) {
            perror(policy);
            return 1;
        }
        r = sp_proxy_config_parse_json(text, policy, &cfg, &err);
        free(text);
    } else {
        r = sp_proxy_config_parse(allow ? allow : "", &cfg, &err);
    }
    if (r < 0) {
        fprintf(stderr, "proxy_test: %s\n", err.message);
        return 2;
    }
    if (allow_private)
        cfg.allow_private = true;
    if (idle > 0)
        cfg.idle_timeout_ms = (unsigned)idle;
    if (conn > 0)
        cfg.connect_timeout_ms = (unsigned)conn;
    if (resolve > 0)
        cfg.resolve_timeout_ms = (unsigned)resolve;
    if (hmax > 0)
        cfg.header_max = (unsigned)hmax;
    if (maxc > 0)
        cfg.max_conns = (unsigned)maxc;

    struct sp_proxy *p = NULL;
    r = sp_proxy_new(&cfg, &p, &err);
    sp_proxy_config_free(&cfg);
    if (r < 0) {
        fprintf(stderr, "proxy_test: %s\n", err.message);
        return 1;
    }
    static int log_fd = STDERR_FILENO;
    sp_proxy_set_log(p, log_event, &log_fd);
    int lfd = listen_on(listen_spec);
    if (lfd < 0) {
        fprintf(stderr, "proxy_test: cannot listen on %s: %s\n", listen_spec,
                strerror(errno));
        return 1;
    }
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    getsockname(lfd, (struct sockaddr *)&sin, &sl);
    if ((r = sp_proxy_add_listener(p, lfd)) < 0) {
        fprintf(stderr, "proxy_test: add listener: %s\n", strerror(-r));
        return 1;
    }

    /* As in sandpit run and the supervisor: SIGPIPE off, so the relay may
     * splice(2) (which cannot pass MSG_NOSIGNAL). */
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    printf("PORT %u\n", ntohs(sin.sin_port));
    fflush(stdout);

    for (;;) {
        struct pollfd pfd[2] = {{.fd = sp_proxy_fd(p), .events = POLLIN},
                                {.fd = sfd, .events = POLLIN}};
        int n = poll(pfd, 2, sp_proxy_next_timeout_ms(p));
        if (n < 0 && errno != EINTR)
            break;
        if (pfd[1].revents & POLLIN)
            break;
        if (sp_proxy_dispatch(p, 0) < 0)
            break;
    }
    struct sp_proxy_event evs[64];
    size_t got = 0, total = 0;
    uint64_t last = 0;
    while ((got = sp_proxy_log_read(p, last, evs, 64)) > 0) {
        total += got;
        last = evs[got - 1].seq;
    }
    printf("RING %zu %llu\n", total, (unsigned long long)last);
    fflush(stdout);
    sp_proxy_free(p);
    close(sfd);
    return 0;
}
