/* tcp_echo: a TCP echo server, one process per connection.
 *
 *   lunatic tcp_echo.wasm [PORT] [--max-connections N]
 *
 * main binds 127.0.0.1:PORT (default 7878) and accepts connections in a loop.
 * For each one it spawns an "echo" process and hands it the connection in a
 * message: push_tcp_stream moves the stream out of main's table into the
 * message, take_tcp_stream moves it into the handler's table.  The handler
 * echoes every byte back until the client closes its side (a read of 0
 * bytes), then drops the stream, which closes the socket.
 *
 * With --max-connections N, main stops accepting after N connections, waits
 * until their handlers have finished (each reports "done" to main, whose
 * handle travels in the same message as the stream) and exits 0.  Without it,
 * the server runs until it is interrupted.
 */
#include "lunatic_util.h"

#define DEFAULT_PORT 7878
#define BUF_SIZE 4096

/* Write all of DATA to STREAM; 0, or 1 after printing the error. */
static int write_all(uint64_t stream, const uint8_t *data, size_t len, int32_t conn) {
    while (len > 0) {
        funk_ciovec iov = {data, len};
        uint64_t out = 0;
        if (lunatic_networking_tcp_write_vectored(stream, &iov, 1, 0, &out) != 0) {
            char what[64];
            snprintf(what, sizeof what, "connection %d: write", (int)conn);
            lu_report_error(what, out);
            return 1;
        }
        data += out;
        len -= (size_t)out;
    }
    return 0;
}

/* A connection's process: echo until end of stream; REPORT != 0: tell main. */
LU_EXPORT("echo") void echo(int32_t conn, int32_t report) {
    lu_receive(0, 0, NULL, 0);
    uint64_t stream = lunatic_message_take_tcp_stream(0);
    uint64_t main_id = lunatic_message_take_process(1);
    static uint8_t buf[BUF_SIZE];
    uint64_t total = 0;
    for (;;) {
        uint64_t n = 0;
        if (lunatic_networking_tcp_read(stream, LU_PTR(buf), sizeof buf, 0, &n) != 0) {
            char what[64];
            snprintf(what, sizeof what, "connection %d: read", (int)conn);
            lu_report_error(what, n);
            break;
        }
        if (n == 0) break;  /* the client closed its side */
        if (write_all(stream, buf, (size_t)n, conn)) break;
        total += n;
    }
    lunatic_networking_drop_tcp_stream(stream);  /* the last reference: the socket closes */
    say("connection %d: echoed %llu bytes, closed\n", (int)conn, (unsigned long long)total);
    if (report) {
        char done[64];
        snprintf(done, sizeof done, "%d %llu", (int)conn, (unsigned long long)total);
        lu_send_str(main_id, 0, done);
    }
    lunatic_process_drop_process(main_id);
}

static void peer_text(uint64_t peer, char *out, size_t cap) {
    uint32_t type = 0, flow = 0, scope = 0;
    uint8_t addr[16] = {0};
    uint16_t port = 0;
    snprintf(out, cap, "?");
    if (lunatic_networking_resolve_next(peer, LU_PTR(&type), LU_PTR(addr), LU_PTR(&port),
                                        LU_PTR(&flow), LU_PTR(&scope)) == 0 && type == 4) {
        snprintf(out, cap, "%u.%u.%u.%u:%u", addr[0], addr[1], addr[2], addr[3], port);
    }
    lunatic_networking_drop_dns_iterator(peer);
}

static int usage(void) {
    say("usage: tcp_echo [PORT] [--max-connections N]\n");
    return 2;
}

static int parse_number(const char *text, long max, long *out) {
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (end == text || *end != 0 || v < 0 || v > max) return 1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    long port = DEFAULT_PORT, max_connections = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--max-connections") == 0) {
            if (i + 1 >= argc || parse_number(argv[++i], 1000000, &max_connections))
                return usage();
        } else if (parse_number(argv[i], 65535, &port)) {
            return usage();
        }
    }

    static const uint8_t localhost[4] = {127, 0, 0, 1};
    uint64_t listener = 0;
    if (lunatic_networking_tcp_bind(4, LU_PTR(localhost), (uint32_t)port, 0, 0, &listener)) {
        lu_report_error("tcp_bind", listener);
        return 1;
    }
    if (max_connections)
        say("tcp_echo: listening on 127.0.0.1:%ld (stopping after %ld connections)\n", port,
            max_connections);
    else
        say("tcp_echo: listening on 127.0.0.1:%ld\n", port);

    long accepted = 0;
    while (max_connections == 0 || accepted < max_connections) {
        uint64_t stream = 0, peer = 0;
        if (lunatic_networking_tcp_accept(listener, LU_PTR(&stream), LU_PTR(&peer)) != 0) {
            lu_report_error("tcp_accept", stream);
            return 1;
        }
        accepted++;
        char from[64];
        peer_text(peer, from, sizeof from);
        say("tcp_echo: connection %ld from %s: starting a process for it\n", accepted, from);
        uint64_t handler;
        lu_param params[] = {lu_i32((int32_t)accepted), lu_i32(max_connections != 0)};
        if (lu_spawn(0, "echo", params, 2, &handler)) return 1;
        lu_create(0, NULL, 0);
        lunatic_message_push_tcp_stream(stream);
        lunatic_message_push_process(lunatic_process_this());
        lunatic_message_send(handler);
        lunatic_process_drop_process(handler);
    }
    lunatic_networking_drop_tcp_listener(listener);

    uint64_t bytes = 0;
    char text[64];
    for (long i = 0; i < accepted; i++) {
        lu_receive(0, 0, text, sizeof text);
        unsigned long long n = 0;
        if (sscanf(text, "%*d %llu", &n) == 1) bytes += n;
    }
    say("tcp_echo: %ld connections done, %llu bytes echoed; bye\n", accepted,
        (unsigned long long)bytes);
    return 0;
}
