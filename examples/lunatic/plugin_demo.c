/* plugin_demo: a plugin adds a function to modules; processes spawned on it run it.
 *
 *   lunatic plugin_demo.wasm
 *   lunatic -P ../plugins/wasm/add_check.wasm plugin_demo.wasm
 *
 * The plugin is examples/plugins/add_check.c: it adds to every module an
 * export "plugin_check" (param i32) that traps unless its parameter is 42.
 * This program carries a copy of it (add_check_wasm, generated into the build
 * from examples/plugins/wasm/add_check.wasm by scripts/build-guests).
 *
 * 1. The main module: inherit_spawn "plugin_check".  Run with -P, the lunatic
 *    command applied the plugin to this module before compiling it, so the
 *    spawn works; without -P the module has no such export and spawn fails.
 * 2. A new config gets the plugin (add_plugin) and an environment is made from
 *    it.  add_this_module compiles this module's original bytes there, which
 *    runs the plugin on them.  Two linked processes are spawned on the added
 *    function: plugin_check(41) traps, and its death arrives as a signal
 *    message with its link tag (die_when_link_dies(0)); plugin_check(42)
 *    returns, so no signal comes for it.
 * 3. Adding bytes that are not wasm as a plugin fails with an error.
 *
 * Exits 0 when everything happened as described, 1 otherwise.
 */
#include "lunatic_util.h"
#include "add_check_wasm.h" /* add_check_wasm[], add_check_wasm_len */

#define FAILING_TAG 41
#define PASSING_TAG 42

static const char FUNCTION[] = "plugin_check";

/* Spawn plugin_check(ARG) from MODULE, linked with tag ARG; 0 on success. */
static uint32_t spawn_check(uint64_t module, int32_t arg) {
    lu_param params[] = {lu_i32(arg)};
    uint64_t result;
    uint32_t rc = lunatic_process_spawn(arg, module, FUNCTION, sizeof FUNCTION - 1,
                                        (const uint8_t *)params, sizeof params, &result);
    if (rc != 0) {
        lu_report_error("spawn plugin_check", result);
        return rc;
    }
    say("spawned plugin_check(%d), linked with tag %d\n", (int)arg, (int)arg);
    return 0;
}

static int main_module_has_check(void) {
    lu_param params[] = {lu_i32(PASSING_TAG)};
    uint64_t result;
    uint32_t rc = lunatic_process_inherit_spawn(0, FUNCTION, sizeof FUNCTION - 1,
                                                (const uint8_t *)params, sizeof params,
                                                &result);
    char text[256];
    if (rc == 0) {
        say("main module: plugin_check is there (the lunatic command's -P added it)\n");
        return 1;
    }
    say("main module: no plugin_check (%s)\n", lu_error_text(result, text, sizeof text));
    return 0;
}

int main(void) {
    char text[256];
    uint64_t out;
    main_module_has_check();

    uint64_t config = lunatic_process_create_config(1ull << 32, 0);
    lunatic_process_allow_namespace(config, "lunatic::", 9);
    if (lunatic_process_add_plugin(config, add_check_wasm, add_check_wasm_len, &out) != 0) {
        lu_report_error("add_plugin", out);
        return 1;
    }
    say("add_plugin: the plugin (%u bytes) is in the config\n", (unsigned)add_check_wasm_len);
    static const uint8_t NOT_WASM[] = "not a plugin";
    if (lunatic_process_add_plugin(config, NOT_WASM, sizeof NOT_WASM - 1, &out) == 0) {
        say("add_plugin accepted bytes that are not wasm\n");
        return 1;
    }
    say("add_plugin of bytes that are not wasm: %s\n", lu_error_text(out, text, sizeof text));

    uint64_t env;
    if (lunatic_process_create_environment(config, &env) != 0) {
        lu_report_error("create_environment", env);
        return 1;
    }
    lunatic_process_drop_config(config);
    uint64_t module;
    if (lunatic_process_add_this_module(env, &module) != 0) {
        lu_report_error("add_this_module", module);
        return 1;
    }
    say("add_this_module: this module, rewritten by the plugin\n");

    lunatic_process_die_when_link_dies(0); /* a linked death becomes a signal message */
    if (spawn_check(module, PASSING_TAG) || spawn_check(module, FAILING_TAG)) return 1;

    if (lu_receive(FAILING_TAG, 10000, NULL, 0) != LU_SIGNAL) {
        say("no signal from plugin_check(%d)\n", FAILING_TAG);
        return 1;
    }
    say("plugin_check(%d) trapped: its link signal arrived (tag %lld)\n", FAILING_TAG,
        (long long)lunatic_message_get_tag());
    if (lu_receive(PASSING_TAG, 300, NULL, 0) != LU_TIMEOUT) {
        say("plugin_check(%d) failed\n", PASSING_TAG);
        return 1;
    }
    say("plugin_check(%d) returned: no signal within 300 ms\n", PASSING_TAG);
    return 0;
}
