/* add_check: a Lunatic plugin that adds an exported function to every module.
 *
 * The function is
 *
 *     (func (export "plugin_check") (param i32)
 *       (if (i32.ne (local.get 0) (i32.const 42)) (then unreachable)))
 *
 * so a process spawned on it ends normally when its parameter is 42 and traps
 * otherwise.  The plugin is a wasm module with no entry point: the runtime
 * makes a fresh instance of it for each module added to an environment that
 * has it, and calls lunatic_create_module_hook, which edits that module
 * through the three lunatic::plugin functions (examples/include/lunatic_plugin.h).
 *
 * Add it with `lunatic -P examples/plugins/wasm/add_check.wasm PROGRAM.wasm`, or
 * from a guest with lunatic::process::add_plugin (examples/lunatic/plugin_demo.c).
 */
#include "lunatic_plugin.h"

#define EXPORT_NAME "plugin_check"

static const uint8_t PARAMS[] = {0x7F}; /* one i32 */

/* The body, as wasm bytes; add_function needs the final end (0x0B) too. */
static const uint8_t BODY[] = {
    0x20, 0x00,       /* local.get 0   */
    0x41, 0x2A,       /* i32.const 42  */
    0x47,             /* i32.ne        */
    0x04, 0x40,       /* if (no result) */
    0x00,             /*   unreachable */
    0x0B,             /* end (if)      */
    0x0B,             /* end (body)    */
};

__attribute__((export_name("lunatic_create_module_hook")))
void lunatic_create_module_hook(void) {
    uint64_t type, function;
    /* Errors land in the plugin's private error table; nothing can go wrong
       here unless the runtime is broken, so a failure just traps (the module
       is then refused with a message naming this plugin). */
    if (lunatic_plugin_add_function_type(PARAMS, sizeof PARAMS, NULL, 0, &type) != 0)
        __builtin_trap();
    /* no locals: an empty array of 5-byte (count, type) records */
    if (lunatic_plugin_add_function((uint32_t)type, NULL, 0, BODY, sizeof BODY, &function) != 0)
        __builtin_trap();
    /* The index add_function returned counts imported functions too: it is
       the index exports use, so it can be exported as it is. */
    lunatic_plugin_add_function_export(EXPORT_NAME, sizeof EXPORT_NAME - 1, (uint32_t)function);
}
