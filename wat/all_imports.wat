;; Every host function a Lunatic 0.6 guest may import, with its exact wasm signature.
;;
;; Signature-regression fixture, WRITTEN BY HAND from the Lunatic 0.6 host ABI
;; specification (section 2 "Import table" and sections 3-6 for the 51 lunatic::*
;; functions; section 7.12 for WASI).  It is not generated: when the ABI changes on
;; purpose, edit this file by hand, in the same change, and say why.
;; tests/test_all_imports_wat.py checks it.
;;
;; Layout: one comment line per namespace, one comment line per import naming its
;; parameters (lunatic::* as the specification names them; WASI as our WASI host,
;; lunatic_api.wasi.Wasi, names them), then the import with the id $namespace.name.
;; The WASI signatures equal those funk derives from lunatic_api.wasi.Wasi (all 46
;; wasi_snapshot_preview1 functions, sock_accept included).  The module exports a
;; one-page memory named "memory" and has nothing else.
(module
  ;; lunatic::error
  ;; string_size(error_id) -> i32
  (import "lunatic::error" "string_size" (func $lunatic::error.string_size (param i64) (result i32)))
  ;; to_string(error_id, out_ptr)
  (import "lunatic::error" "to_string" (func $lunatic::error.to_string (param i64 i32)))
  ;; drop(error_id)
  (import "lunatic::error" "drop" (func $lunatic::error.drop (param i64)))

  ;; lunatic::message
  ;; create_data(tag, capacity)
  (import "lunatic::message" "create_data" (func $lunatic::message.create_data (param i64 i64)))
  ;; write_data(ptr, len) -> i32
  (import "lunatic::message" "write_data" (func $lunatic::message.write_data (param i32 i32) (result i32)))
  ;; read_data(ptr, len) -> i32
  (import "lunatic::message" "read_data" (func $lunatic::message.read_data (param i32 i32) (result i32)))
  ;; seek_data(pos)
  (import "lunatic::message" "seek_data" (func $lunatic::message.seek_data (param i64)))
  ;; get_tag() -> i64
  (import "lunatic::message" "get_tag" (func $lunatic::message.get_tag (result i64)))
  ;; data_size() -> i64
  (import "lunatic::message" "data_size" (func $lunatic::message.data_size (result i64)))
  ;; push_process(process_id) -> i64
  (import "lunatic::message" "push_process" (func $lunatic::message.push_process (param i64) (result i64)))
  ;; take_process(index) -> i64
  (import "lunatic::message" "take_process" (func $lunatic::message.take_process (param i64) (result i64)))
  ;; push_tcp_stream(stream_id) -> i64
  (import "lunatic::message" "push_tcp_stream" (func $lunatic::message.push_tcp_stream (param i64) (result i64)))
  ;; take_tcp_stream(index) -> i64
  (import "lunatic::message" "take_tcp_stream" (func $lunatic::message.take_tcp_stream (param i64) (result i64)))
  ;; send(process_id)
  (import "lunatic::message" "send" (func $lunatic::message.send (param i64)))
  ;; send_receive_skip_search(process_id, timeout_ms) -> i32
  (import "lunatic::message" "send_receive_skip_search" (func $lunatic::message.send_receive_skip_search (param i64 i32) (result i32)))
  ;; receive(tag, timeout_ms) -> i32
  (import "lunatic::message" "receive" (func $lunatic::message.receive (param i64 i32) (result i32)))

  ;; lunatic::networking
  ;; resolve(name_ptr, name_len, timeout_ms, out_ptr) -> i32
  (import "lunatic::networking" "resolve" (func $lunatic::networking.resolve (param i32 i32 i32 i32) (result i32)))
  ;; drop_dns_iterator(iter_id)
  (import "lunatic::networking" "drop_dns_iterator" (func $lunatic::networking.drop_dns_iterator (param i64)))
  ;; resolve_next(iter_id, type_ptr, addr_ptr, port_ptr, flowinfo_ptr, scope_ptr) -> i32
  (import "lunatic::networking" "resolve_next" (func $lunatic::networking.resolve_next (param i64 i32 i32 i32 i32 i32) (result i32)))
  ;; tcp_bind(addr_type, addr_ptr, port, flow_info, scope_id, out_ptr) -> i32
  (import "lunatic::networking" "tcp_bind" (func $lunatic::networking.tcp_bind (param i32 i32 i32 i32 i32 i32) (result i32)))
  ;; drop_tcp_listener(listener_id)
  (import "lunatic::networking" "drop_tcp_listener" (func $lunatic::networking.drop_tcp_listener (param i64)))
  ;; tcp_accept(listener_id, out_stream_ptr, out_peer_ptr) -> i32
  (import "lunatic::networking" "tcp_accept" (func $lunatic::networking.tcp_accept (param i64 i32 i32) (result i32)))
  ;; tcp_connect(addr_type, addr_ptr, port, flow_info, scope_id, timeout_ms, out_ptr) -> i32
  (import "lunatic::networking" "tcp_connect" (func $lunatic::networking.tcp_connect (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  ;; drop_tcp_stream(stream_id)
  (import "lunatic::networking" "drop_tcp_stream" (func $lunatic::networking.drop_tcp_stream (param i64)))
  ;; clone_tcp_stream(stream_id) -> i64
  (import "lunatic::networking" "clone_tcp_stream" (func $lunatic::networking.clone_tcp_stream (param i64) (result i64)))
  ;; tcp_write_vectored(stream_id, iov_ptr, iov_count, timeout_ms, out_ptr) -> i32
  (import "lunatic::networking" "tcp_write_vectored" (func $lunatic::networking.tcp_write_vectored (param i64 i32 i32 i32 i32) (result i32)))
  ;; tcp_read(stream_id, buf_ptr, buf_len, timeout_ms, out_ptr) -> i32
  (import "lunatic::networking" "tcp_read" (func $lunatic::networking.tcp_read (param i64 i32 i32 i32 i32) (result i32)))
  ;; tcp_flush(stream_id, out_ptr) -> i32
  (import "lunatic::networking" "tcp_flush" (func $lunatic::networking.tcp_flush (param i64 i32) (result i32)))

  ;; lunatic::process
  ;; create_config(max_memory, max_fuel) -> i64
  (import "lunatic::process" "create_config" (func $lunatic::process.create_config (param i64 i64) (result i64)))
  ;; drop_config(config_id)
  (import "lunatic::process" "drop_config" (func $lunatic::process.drop_config (param i64)))
  ;; allow_namespace(config_id, str_ptr, str_len)
  (import "lunatic::process" "allow_namespace" (func $lunatic::process.allow_namespace (param i64 i32 i32)))
  ;; add_plugin(config_id, data_ptr, data_len, out_ptr) -> i32
  (import "lunatic::process" "add_plugin" (func $lunatic::process.add_plugin (param i64 i32 i32 i32) (result i32)))
  ;; create_environment(config_id, out_ptr) -> i32
  (import "lunatic::process" "create_environment" (func $lunatic::process.create_environment (param i64 i32) (result i32)))
  ;; drop_environment(env_id)
  (import "lunatic::process" "drop_environment" (func $lunatic::process.drop_environment (param i64)))
  ;; add_module(env_id, data_ptr, data_len, out_ptr) -> i32
  (import "lunatic::process" "add_module" (func $lunatic::process.add_module (param i64 i32 i32 i32) (result i32)))
  ;; add_this_module(env_id, out_ptr) -> i32
  (import "lunatic::process" "add_this_module" (func $lunatic::process.add_this_module (param i64 i32) (result i32)))
  ;; drop_module(module_id)
  (import "lunatic::process" "drop_module" (func $lunatic::process.drop_module (param i64)))
  ;; spawn(link, module_id, func_ptr, func_len, params_ptr, params_len, out_ptr) -> i32
  (import "lunatic::process" "spawn" (func $lunatic::process.spawn (param i64 i64 i32 i32 i32 i32 i32) (result i32)))
  ;; inherit_spawn(link, func_ptr, func_len, params_ptr, params_len, out_ptr) -> i32
  (import "lunatic::process" "inherit_spawn" (func $lunatic::process.inherit_spawn (param i64 i32 i32 i32 i32 i32) (result i32)))
  ;; drop_process(process_id)
  (import "lunatic::process" "drop_process" (func $lunatic::process.drop_process (param i64)))
  ;; clone_process(process_id) -> i64
  (import "lunatic::process" "clone_process" (func $lunatic::process.clone_process (param i64) (result i64)))
  ;; sleep_ms(millis)
  (import "lunatic::process" "sleep_ms" (func $lunatic::process.sleep_ms (param i64)))
  ;; die_when_link_dies(flag)
  (import "lunatic::process" "die_when_link_dies" (func $lunatic::process.die_when_link_dies (param i32)))
  ;; this() -> i64
  (import "lunatic::process" "this" (func $lunatic::process.this (result i64)))
  ;; id(process_id, out_ptr)
  (import "lunatic::process" "id" (func $lunatic::process.id (param i64 i32)))
  ;; this_env() -> i64
  (import "lunatic::process" "this_env" (func $lunatic::process.this_env (result i64)))
  ;; link(tag, process_id)
  (import "lunatic::process" "link" (func $lunatic::process.link (param i64 i64)))
  ;; unlink(process_id)
  (import "lunatic::process" "unlink" (func $lunatic::process.unlink (param i64)))
  ;; register(name_ptr, name_len, ver_ptr, ver_len, env_id, process_id) -> i32
  (import "lunatic::process" "register" (func $lunatic::process.register (param i32 i32 i32 i32 i64 i64) (result i32)))
  ;; unregister(name_ptr, name_len, ver_ptr, ver_len, env_id) -> i32
  (import "lunatic::process" "unregister" (func $lunatic::process.unregister (param i32 i32 i32 i32 i64) (result i32)))
  ;; lookup(name_ptr, name_len, query_ptr, query_len, out_ptr) -> i32
  (import "lunatic::process" "lookup" (func $lunatic::process.lookup (param i32 i32 i32 i32 i32) (result i32)))

  ;; wasi_snapshot_preview1
  ;; args_get(argv, argv_buf) -> i32
  (import "wasi_snapshot_preview1" "args_get" (func $wasi_snapshot_preview1.args_get (param i32 i32) (result i32)))
  ;; args_sizes_get(result1, result2) -> i32
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $wasi_snapshot_preview1.args_sizes_get (param i32 i32) (result i32)))
  ;; clock_res_get(id, result1) -> i32
  (import "wasi_snapshot_preview1" "clock_res_get" (func $wasi_snapshot_preview1.clock_res_get (param i32 i32) (result i32)))
  ;; clock_time_get(id, precision, result1) -> i32
  (import "wasi_snapshot_preview1" "clock_time_get" (func $wasi_snapshot_preview1.clock_time_get (param i32 i64 i32) (result i32)))
  ;; environ_get(environ, environ_buf) -> i32
  (import "wasi_snapshot_preview1" "environ_get" (func $wasi_snapshot_preview1.environ_get (param i32 i32) (result i32)))
  ;; environ_sizes_get(result1, result2) -> i32
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $wasi_snapshot_preview1.environ_sizes_get (param i32 i32) (result i32)))
  ;; fd_advise(fd, offset, length, advice) -> i32
  (import "wasi_snapshot_preview1" "fd_advise" (func $wasi_snapshot_preview1.fd_advise (param i32 i64 i64 i32) (result i32)))
  ;; fd_allocate(fd, offset, length) -> i32
  (import "wasi_snapshot_preview1" "fd_allocate" (func $wasi_snapshot_preview1.fd_allocate (param i32 i64 i64) (result i32)))
  ;; fd_close(fd) -> i32
  (import "wasi_snapshot_preview1" "fd_close" (func $wasi_snapshot_preview1.fd_close (param i32) (result i32)))
  ;; fd_datasync(fd) -> i32
  (import "wasi_snapshot_preview1" "fd_datasync" (func $wasi_snapshot_preview1.fd_datasync (param i32) (result i32)))
  ;; fd_fdstat_get(fd, result1) -> i32
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $wasi_snapshot_preview1.fd_fdstat_get (param i32 i32) (result i32)))
  ;; fd_fdstat_set_flags(fd, flags) -> i32
  (import "wasi_snapshot_preview1" "fd_fdstat_set_flags" (func $wasi_snapshot_preview1.fd_fdstat_set_flags (param i32 i32) (result i32)))
  ;; fd_fdstat_set_rights(fd, fs_rights_base, fs_rights_inheriting) -> i32
  (import "wasi_snapshot_preview1" "fd_fdstat_set_rights" (func $wasi_snapshot_preview1.fd_fdstat_set_rights (param i32 i64 i64) (result i32)))
  ;; fd_filestat_get(fd, result1) -> i32
  (import "wasi_snapshot_preview1" "fd_filestat_get" (func $wasi_snapshot_preview1.fd_filestat_get (param i32 i32) (result i32)))
  ;; fd_filestat_set_size(fd, size) -> i32
  (import "wasi_snapshot_preview1" "fd_filestat_set_size" (func $wasi_snapshot_preview1.fd_filestat_set_size (param i32 i64) (result i32)))
  ;; fd_filestat_set_times(fd, atim, mtim, fst_flags) -> i32
  (import "wasi_snapshot_preview1" "fd_filestat_set_times" (func $wasi_snapshot_preview1.fd_filestat_set_times (param i32 i64 i64 i32) (result i32)))
  ;; fd_pread(fd, iovs_ptr, iovs_count, offset, result1) -> i32
  (import "wasi_snapshot_preview1" "fd_pread" (func $wasi_snapshot_preview1.fd_pread (param i32 i32 i32 i64 i32) (result i32)))
  ;; fd_prestat_dir_name(fd, path_ptr, path_len) -> i32
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $wasi_snapshot_preview1.fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  ;; fd_prestat_get(fd, result1) -> i32
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $wasi_snapshot_preview1.fd_prestat_get (param i32 i32) (result i32)))
  ;; fd_pwrite(fd, iovs_ptr, iovs_count, offset, result1) -> i32
  (import "wasi_snapshot_preview1" "fd_pwrite" (func $wasi_snapshot_preview1.fd_pwrite (param i32 i32 i32 i64 i32) (result i32)))
  ;; fd_read(fd, iovs_ptr, iovs_count, result1) -> i32
  (import "wasi_snapshot_preview1" "fd_read" (func $wasi_snapshot_preview1.fd_read (param i32 i32 i32 i32) (result i32)))
  ;; fd_readdir(fd, buf_ptr, buf_len, cookie, result1) -> i32
  (import "wasi_snapshot_preview1" "fd_readdir" (func $wasi_snapshot_preview1.fd_readdir (param i32 i32 i32 i64 i32) (result i32)))
  ;; fd_renumber(fd, to) -> i32
  (import "wasi_snapshot_preview1" "fd_renumber" (func $wasi_snapshot_preview1.fd_renumber (param i32 i32) (result i32)))
  ;; fd_seek(fd, offset, whence, result1) -> i32
  (import "wasi_snapshot_preview1" "fd_seek" (func $wasi_snapshot_preview1.fd_seek (param i32 i64 i32 i32) (result i32)))
  ;; fd_sync(fd) -> i32
  (import "wasi_snapshot_preview1" "fd_sync" (func $wasi_snapshot_preview1.fd_sync (param i32) (result i32)))
  ;; fd_tell(fd, result1) -> i32
  (import "wasi_snapshot_preview1" "fd_tell" (func $wasi_snapshot_preview1.fd_tell (param i32 i32) (result i32)))
  ;; fd_write(fd, iovs_ptr, iovs_count, result1) -> i32
  (import "wasi_snapshot_preview1" "fd_write" (func $wasi_snapshot_preview1.fd_write (param i32 i32 i32 i32) (result i32)))
  ;; path_create_directory(fd, path_ptr, path_len) -> i32
  (import "wasi_snapshot_preview1" "path_create_directory" (func $wasi_snapshot_preview1.path_create_directory (param i32 i32 i32) (result i32)))
  ;; path_filestat_get(fd, flags, path_ptr, path_len, result1) -> i32
  (import "wasi_snapshot_preview1" "path_filestat_get" (func $wasi_snapshot_preview1.path_filestat_get (param i32 i32 i32 i32 i32) (result i32)))
  ;; path_filestat_set_times(fd, flags, path_ptr, path_len, atim, mtim, fst_flags) -> i32
  (import "wasi_snapshot_preview1" "path_filestat_set_times" (func $wasi_snapshot_preview1.path_filestat_set_times (param i32 i32 i32 i32 i64 i64 i32) (result i32)))
  ;; path_link(old_fd, old_flags, old_path_ptr, old_path_len, new_fd, new_path_ptr, new_path_len) -> i32
  (import "wasi_snapshot_preview1" "path_link" (func $wasi_snapshot_preview1.path_link (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  ;; path_open(fd, dirflags, path_ptr, path_len, oflags, fs_rights_base, fs_rights_inheriting, fdflags, result1) -> i32
  (import "wasi_snapshot_preview1" "path_open" (func $wasi_snapshot_preview1.path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  ;; path_readlink(fd, path_ptr, path_len, buf_ptr, buf_len, result1) -> i32
  (import "wasi_snapshot_preview1" "path_readlink" (func $wasi_snapshot_preview1.path_readlink (param i32 i32 i32 i32 i32 i32) (result i32)))
  ;; path_remove_directory(fd, path_ptr, path_len) -> i32
  (import "wasi_snapshot_preview1" "path_remove_directory" (func $wasi_snapshot_preview1.path_remove_directory (param i32 i32 i32) (result i32)))
  ;; path_rename(fd, old_path_ptr, old_path_len, new_fd, new_path_ptr, new_path_len) -> i32
  (import "wasi_snapshot_preview1" "path_rename" (func $wasi_snapshot_preview1.path_rename (param i32 i32 i32 i32 i32 i32) (result i32)))
  ;; path_symlink(old_path_ptr, old_path_len, fd, new_path_ptr, new_path_len) -> i32
  (import "wasi_snapshot_preview1" "path_symlink" (func $wasi_snapshot_preview1.path_symlink (param i32 i32 i32 i32 i32) (result i32)))
  ;; path_unlink_file(fd, path_ptr, path_len) -> i32
  (import "wasi_snapshot_preview1" "path_unlink_file" (func $wasi_snapshot_preview1.path_unlink_file (param i32 i32 i32) (result i32)))
  ;; poll_oneoff(subscriptions, events, nsubscriptions, result1) -> i32
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $wasi_snapshot_preview1.poll_oneoff (param i32 i32 i32 i32) (result i32)))
  ;; proc_exit(rval)
  (import "wasi_snapshot_preview1" "proc_exit" (func $wasi_snapshot_preview1.proc_exit (param i32)))
  ;; proc_raise(sig) -> i32
  (import "wasi_snapshot_preview1" "proc_raise" (func $wasi_snapshot_preview1.proc_raise (param i32) (result i32)))
  ;; random_get(buf_ptr, buf_len) -> i32
  (import "wasi_snapshot_preview1" "random_get" (func $wasi_snapshot_preview1.random_get (param i32 i32) (result i32)))
  ;; sched_yield() -> i32
  (import "wasi_snapshot_preview1" "sched_yield" (func $wasi_snapshot_preview1.sched_yield (result i32)))
  ;; sock_accept(fd, flags, result1) -> i32
  (import "wasi_snapshot_preview1" "sock_accept" (func $wasi_snapshot_preview1.sock_accept (param i32 i32 i32) (result i32)))
  ;; sock_recv(fd, ri_data_ptr, ri_data_count, ri_flags, result1, result2) -> i32
  (import "wasi_snapshot_preview1" "sock_recv" (func $wasi_snapshot_preview1.sock_recv (param i32 i32 i32 i32 i32 i32) (result i32)))
  ;; sock_send(fd, si_data_ptr, si_data_count, si_flags, result1) -> i32
  (import "wasi_snapshot_preview1" "sock_send" (func $wasi_snapshot_preview1.sock_send (param i32 i32 i32 i32 i32) (result i32)))
  ;; sock_shutdown(fd, how) -> i32
  (import "wasi_snapshot_preview1" "sock_shutdown" (func $wasi_snapshot_preview1.sock_shutdown (param i32 i32) (result i32)))

  (memory (export "memory") 1)
)
