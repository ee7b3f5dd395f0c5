<?php

declare(strict_types=1);

// Test worker: completes the handshake, then exits with code 3 when it receives a request.

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Worker\Worker;

$worker = Worker::create();
if ($worker->waitPayload() !== null) {
    fwrite(STDERR, "crash.php: exiting with code 3 mid-request\n");
    exit(3);
}
