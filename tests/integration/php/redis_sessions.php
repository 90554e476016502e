<?php
// Writes PHP sessions with the configured save handler (the tests run it
// with phpredis: session.save_handler = redis or rediscluster). Reads a JSON
// document on stdin: {"operations": [[operation, session id], ...],
// "content": {kind: PHP code filling $_SESSION}}. An operation is a kind
// (write that content), "destroy" (session_destroy) or "big" (a logged-in
// session larger than 2 MiB). Prints {"done": n} on success.
$input = json_decode(stream_get_contents(STDIN), true);
$done = 0;
foreach ($input['operations'] as [$operation, $id]) {
    session_id($id);
    if (!session_start()) {
        fwrite(STDERR, "session_start failed for $operation\n");
        exit(3);
    }
    if ($operation === 'destroy') {
        if (!session_destroy()) exit(5);
    } else {
        $_SESSION = [];
        if ($operation === 'big') {
            eval($input['content']['authenticated']);
            $_SESSION['payload'] = str_repeat('x', 2 * 1024 * 1024 + 100);
        } else {
            eval($input['content'][$operation]);
        }
        if (!session_write_close()) exit(4);
    }
    $done++;
}
echo json_encode(['done' => $done]), "\n";
