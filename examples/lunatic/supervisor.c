/* supervisor: restart a crashing worker, up to 3 times.
 *
 *   lunatic supervisor.wasm
 *
 * main is the supervisor.  It turns die_when_link_dies off, so that the death
 * of a linked process arrives as a signal message instead of killing it, then
 * spawns a linked "worker" (inherit_spawn with link = 100 + run number; the
 * run number is also the worker's i32 parameter).  The worker reports its
 * progress in data messages, then traps.  The supervisor receives:
 *   receive(...) == 0  a data message: the worker's progress report;
 *   receive(...) == 1  a signal message: a linked process died; get_tag() is
 *                      the link tag given at spawn, so it says which run died.
 * After the first run and 3 restarts have all crashed it gives up and exits 0.
 * (The lunatic command also reports each worker's trap on stderr.)
 */
#include "lunatic_util.h"

#define MAX_RESTARTS 3
#define LINK_BASE 100

/* A worker: do three units of "work", report each to the supervisor, then crash. */
LU_EXPORT("worker") void worker(int32_t run) {
    char text[64];
    lu_receive(0, 0, NULL, 0);                  /* the supervisor's handle */
    uint64_t supervisor = lunatic_message_take_process(0);
    int total = 0;
    for (int step = 1; step <= 3; step++) {
        total += step * run;
        lunatic_process_sleep_ms(5);
        snprintf(text, sizeof text, "run %d: step %d, total %d", (int)run, step, total);
        lu_send_str(supervisor, 0, text);
    }
    __builtin_trap();                           /* an unrecoverable bug */
}

static uint64_t start_worker(int run) {
    uint64_t child;
    lu_param params[] = {lu_i32(run)};
    if (lu_spawn(LINK_BASE + run, "worker", params, 1, &child)) exit(1);
    lu_create(0, NULL, 0);
    lunatic_message_push_process(lunatic_process_this());
    lunatic_message_send(child);
    say("supervisor: started worker run %d (link tag %d)\n", run, LINK_BASE + run);
    return child;
}

int main(void) {
    lunatic_process_die_when_link_dies(0);      /* LinkDied becomes a signal message */
    int run = 1;
    uint64_t child = start_worker(run);
    char text[128];
    for (;;) {
        uint32_t rc = lu_receive(0, 0, text, sizeof text);
        if (rc == LU_DATA) {
            say("supervisor: progress from worker: %s\n", text);
            continue;
        }
        if (rc != LU_SIGNAL) {
            say("supervisor: unexpected receive result %u\n", rc);
            return 1;
        }
        int64_t tag = lunatic_message_get_tag();
        say("supervisor: worker run %d died (LinkDied signal, tag %lld)\n",
            (int)(tag - LINK_BASE), (long long)tag);
        lunatic_process_drop_process(child);
        if (run > MAX_RESTARTS) {
            say("supervisor: %d restarts used up; giving up\n", MAX_RESTARTS);
            return 0;
        }
        run++;
        say("supervisor: restart %d of %d\n", run - 1, MAX_RESTARTS);
        child = start_worker(run);
    }
}
