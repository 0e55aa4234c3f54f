/* registry: one name, several versions, semver queries.
 *
 *   lunatic registry.wasm
 *
 * main spawns four "calculator" processes and registers them in its own
 * environment (this_env) under the name "calculator" with the versions
 * 1.0.0, 1.2.3, 1.4.0-beta and 2.0.0.  Then it looks the name up with
 * Cargo-style version requirements; for each match it asks the process found
 * which version it is (a request carrying main's handle; the answer comes back
 * with the request's tag).  The runtime answers a lookup with the highest
 * matching version; a pre-release only matches a requirement that names it.
 *
 *   lookup result 0: found (a new process handle), 1: bad query, 2: not found.
 */
#include "lunatic_util.h"

static const char *const VERSIONS[] = {"1.0.0", "1.2.3", "1.4.0-beta", "2.0.0"};
#define N_VERSIONS (sizeof VERSIONS / sizeof VERSIONS[0])

static const char *const QUERIES[] = {"^1.2", "~1.2", ">=2", "^3", "bad query!", "~1.4.0-beta"};
#define N_QUERIES (sizeof QUERIES / sizeof QUERIES[0])

static const char NAME[] = "calculator";

/* A registered process: answers "version?" with its version, until "stop". */
LU_EXPORT("calculator") void calculator(int32_t index) {
    const char *version = VERSIONS[index];
    char text[64];
    for (;;) {
        lu_receive(0, 0, text, sizeof text);
        if (strcmp(text, "stop") == 0) return;
        int64_t tag = lunatic_message_get_tag();
        uint64_t sender = lunatic_message_take_process(0);
        say("  calculator %s: answering request %lld\n", version, (long long)tag);
        lu_send_str(sender, tag, version);
        lunatic_process_drop_process(sender);
    }
}

int main(void) {
    uint64_t env = lunatic_process_this_env();
    uint64_t calculators[N_VERSIONS];
    for (size_t i = 0; i < N_VERSIONS; i++) {
        lu_param params[] = {lu_i32((int32_t)i)};
        if (lu_spawn(0, "calculator", params, 1, &calculators[i])) return 1;
        uint32_t rc = lunatic_process_register(NAME, strlen(NAME), VERSIONS[i],
                                               strlen(VERSIONS[i]), env, calculators[i]);
        say("registered %s %s: %s\n", NAME, VERSIONS[i], rc == 0 ? "ok" : "bad version");
        if (rc != 0) return 1;
    }

    int64_t tag = 0;
    for (size_t q = 0; q < N_QUERIES; q++) {
        const char *query = QUERIES[q];
        uint64_t found = 0;
        uint32_t rc = lunatic_process_lookup(NAME, strlen(NAME), query, strlen(query),
                                             LU_PTR(&found));
        if (rc == 1) {
            say("lookup %s \"%s\": invalid version requirement\n", NAME, query);
            continue;
        }
        if (rc == 2) {
            say("lookup %s \"%s\": no matching version\n", NAME, query);
            continue;
        }
        tag++;
        say("lookup %s \"%s\": found; asking it (request %lld)\n", NAME, query,
            (long long)tag);
        lu_create(tag, "version?", 8);
        lunatic_message_push_process(lunatic_process_this());
        lunatic_message_send(found);
        char answer[64];
        lu_receive(tag, 0, answer, sizeof answer);
        say("lookup %s \"%s\": answered by version %s\n", NAME, query, answer);
        lunatic_process_drop_process(found);
    }

    for (size_t i = 0; i < N_VERSIONS; i++) {
        lu_send_str(calculators[i], 0, "stop");
        lunatic_process_drop_process(calculators[i]);
    }
    lunatic_process_drop_environment(env);
    say("done\n");
    return 0;
}
