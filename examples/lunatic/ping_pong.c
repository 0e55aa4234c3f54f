/* ping_pong: two processes exchange N pings (N = argv[1], default 10).
 *
 *   lunatic ping_pong.wasm [N]
 *
 * main spawns a "ponger" (no parameters) and a "pinger" (parameter: N, an
 * i32 spawn parameter), then introduces them with one message that carries
 * two process handles (push_process / take_process): the ponger and main
 * itself.  The pinger sends its own handle to the ponger, then N pings, each
 * answered by a pong; it ends the game with "stop" (answered by "bye") and
 * tells main "done".
 * main waits for that message, so the command ends only after the game.
 */
#include "lunatic_util.h"

/* The ponger: answers every "ping K" with "pong K", and "stop" with "bye". */
LU_EXPORT("ponger") void ponger(void) {
    char text[64];
    /* first message: the pinger's handle */
    lu_receive(0, 0, NULL, 0);
    uint64_t pinger = lunatic_message_take_process(0);
    for (;;) {
        lu_receive(0, 0, text, sizeof text);
        if (strcmp(text, "stop") == 0) break;
        int k = atoi(text + 5);  /* "ping K" */
        say("ponger: got ping %d, sending pong %d\n", k, k);
        char reply[32];
        snprintf(reply, sizeof reply, "pong %d", k);
        lu_send_str(pinger, 0, reply);
    }
    say("ponger: stopped\n");
    lu_send_str(pinger, 0, "bye");
    lunatic_process_drop_process(pinger);
}

/* The pinger: N round trips with the ponger, then reports to main. */
LU_EXPORT("pinger") void pinger(int32_t rounds) {
    char text[64];
    /* the introduction: resource 0 is the ponger, resource 1 is main */
    lu_receive(0, 0, NULL, 0);
    uint64_t ponger_id = lunatic_message_take_process(0);
    uint64_t main_id = lunatic_message_take_process(1);

    lu_create(0, NULL, 0);
    lunatic_message_push_process(lunatic_process_this());
    lunatic_message_send(ponger_id);

    for (int k = 1; k <= rounds; k++) {
        char ping[32];
        snprintf(ping, sizeof ping, "ping %d", k);
        say("pinger: sending ping %d\n", k);
        lu_send_str(ponger_id, 0, ping);
        lu_receive(0, 0, text, sizeof text);
        say("pinger: got %s\n", text);
    }
    lu_send_str(ponger_id, 0, "stop");
    lu_receive(0, 0, text, sizeof text);  /* "bye": the ponger has finished */
    char done[32];
    snprintf(done, sizeof done, "done %d", rounds);
    lu_send_str(main_id, 0, done);
}

int main(int argc, char **argv) {
    int rounds = 10;
    if (argc > 1) {
        char *end = NULL;
        long n = strtol(argv[1], &end, 10);
        if (end == argv[1] || *end != 0 || n < 0 || n > 1000000) {
            say("usage: ping_pong [N]   (N: number of pings, default 10)\n");
            return 2;
        }
        rounds = (int)n;
    }
    say("main: %d ping(s) to exchange between two processes\n", rounds);

    uint64_t pong_id, ping_id;
    if (lu_spawn(0, "ponger", NULL, 0, &pong_id)) return 1;
    lu_param params[] = {lu_i32(rounds)};
    if (lu_spawn(0, "pinger", params, 1, &ping_id)) return 1;

    lu_create(0, NULL, 0);
    lunatic_message_push_process(pong_id);            /* moved into the message */
    lunatic_message_push_process(lunatic_process_this());
    lunatic_message_send(ping_id);

    char text[64];
    lu_receive(0, 0, text, sizeof text);              /* "done N" */
    say("main: pinger reports \"%s\"; the end\n", text);
    lunatic_process_drop_process(ping_id);
    return 0;
}
