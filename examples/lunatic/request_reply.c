/* request_reply: tagged requests with send_receive_skip_search.
 *
 *   lunatic request_reply.wasm
 *
 * main (the client) spawns a "server" that evaluates "A op B" requests.  Each
 * request is a data message tagged with a fresh tag (counting from 1, as the
 * Rust guest library does) that carries the client's handle as resource 0; the
 * server answers with a message of the same tag.  The client sends and waits
 * in one call, send_receive_skip_search: it waits for the next *newly arriving*
 * message with the request's tag and never looks at what is already queued.
 *
 * To show that, the client first puts an unrelated message with tag 1 -- the
 * tag of its first request -- into its own mailbox.  The request with tag 1
 * still gets the server's reply, and the unrelated message is still queued at
 * the end, where an ordinary receive finds it.
 */
#include "lunatic_util.h"

static const char *const REQUESTS[] = {"2 + 3", "6 * 7", "10 - 4", "7 / 0"};
#define N_REQUESTS (sizeof REQUESTS / sizeof REQUESTS[0])

/* The server: answers each tagged request with the result; "stop" with "bye". */
LU_EXPORT("server") void server(void) {
    char text[64], reply[64];
    for (;;) {
        lu_receive(0, 0, text, sizeof text);
        int64_t tag = lunatic_message_get_tag();
        uint64_t client = lunatic_message_take_process(0);
        if (strcmp(text, "stop") == 0) {
            say("server: request %lld \"stop\" -> \"bye\"; stopping\n", (long long)tag);
            lu_send_str(client, tag, "bye");
            return;
        }
        long a = 0, b = 0;
        char op = 0;
        if (sscanf(text, "%ld %c %ld", &a, &op, &b) != 3) {
            snprintf(reply, sizeof reply, "cannot parse");
        } else if (op == '+') {
            snprintf(reply, sizeof reply, "%ld", a + b);
        } else if (op == '-') {
            snprintf(reply, sizeof reply, "%ld", a - b);
        } else if (op == '*') {
            snprintf(reply, sizeof reply, "%ld", a * b);
        } else if (op == '/' && b != 0) {
            snprintf(reply, sizeof reply, "%ld", a / b);
        } else {
            snprintf(reply, sizeof reply, "error: cannot compute %s", text);
        }
        say("server: request %lld \"%s\" -> \"%s\"\n", (long long)tag, text, reply);
        lu_send_str(client, tag, reply);
        lunatic_process_drop_process(client);
    }
}

int main(void) {
    uint64_t server_id;
    if (lu_spawn(0, "server", NULL, 0, &server_id)) return 1;

    lu_send_str(lunatic_process_this(), 1, "an unrelated note");
    say("client: queued an unrelated message with tag 1 in my own mailbox\n");

    char reply[64];
    for (size_t i = 0; i < N_REQUESTS; i++) {
        int64_t tag = (int64_t)i + 1;
        lu_create(tag, REQUESTS[i], strlen(REQUESTS[i]));
        lunatic_message_push_process(lunatic_process_this());
        uint32_t rc = lunatic_message_send_receive_skip_search(server_id, 1000);
        if (rc == LU_TIMEOUT) {
            say("client: request %lld timed out\n", (long long)tag);
            return 1;
        }
        int64_t reply_tag = lunatic_message_get_tag();
        lu_read_str(reply, sizeof reply);
        say("client: request %lld \"%s\" -> reply (tag %lld) \"%s\"\n", (long long)tag,
            REQUESTS[i], (long long)reply_tag, reply);
    }

    /* the note is still there: skip-search never took it */
    char text[64];
    uint32_t rc = lu_receive(0, 100, text, sizeof text);
    if (rc == LU_DATA) {
        say("client: still in my mailbox: \"%s\" (tag %lld)\n", text,
            (long long)lunatic_message_get_tag());
    } else {
        say("client: the unrelated message is gone (receive returned %u)\n", rc);
        return 1;
    }
    rc = lu_receive(0, 50, NULL, 0);
    say("client: mailbox empty now (receive timed out: %s)\n", rc == LU_TIMEOUT ? "yes" : "no");

    int64_t tag = (int64_t)N_REQUESTS + 1;
    lu_create(tag, "stop", 4);
    lunatic_message_push_process(lunatic_process_this());
    rc = lunatic_message_send_receive_skip_search(server_id, 1000);
    say("client: stop request %lld -> \"%s\"\n", (long long)tag,
        rc == 0 ? lu_read_str(reply, sizeof reply) : "(timed out)");
    lunatic_process_drop_process(server_id);
    say("client: done\n");
    return 0;
}
