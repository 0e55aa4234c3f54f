;; Every host function a Lunatic 0.6 *plugin* may import, with its exact wasm signature.
;;
;; Signature-regression fixture, WRITTEN BY HAND from the Lunatic 0.6 host ABI
;; specification, section 7.10 ("Functions in lunatic::plugin").  It is not generated:
;; when the plugin ABI changes on purpose, edit this file by hand, in the same change,
;; and say why.  tests/test_funk_plugins.py checks it against funk.plugins.ModuleEditor.
;; Like a plugin, the module exports a one-page memory named "memory"; it has no hook,
;; so as a plugin it changes nothing.
(module
  ;; lunatic::plugin
  ;; add_function_type(params_ptr, params_len, results_ptr, results_len, out_ptr) -> i32
  (import "lunatic::plugin" "add_function_type" (func $lunatic::plugin.add_function_type (param i32 i32 i32 i32 i32) (result i32)))
  ;; add_function(type_index, locals_ptr, locals_len, body_ptr, body_len, out_ptr) -> i32
  (import "lunatic::plugin" "add_function" (func $lunatic::plugin.add_function (param i32 i32 i32 i32 i32 i32) (result i32)))
  ;; add_function_export(name_ptr, name_len, function_index)
  (import "lunatic::plugin" "add_function_export" (func $lunatic::plugin.add_function_export (param i32 i32 i32)))
  (memory (export "memory") 1))
