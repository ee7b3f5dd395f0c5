<?php

declare(strict_types=1);

// Test worker: replies with the request's context and body unchanged. With the argument "linger"
// it ignores the stop command: it never exits (for tests of forced stops).

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Worker\Worker;

$worker = Worker::create();
while (($request = $worker->waitPayload()) !== null) {
    $worker->respond($request);
}
while (($argv[1] ?? '') === 'linger') {
    sleep(3600);
}
