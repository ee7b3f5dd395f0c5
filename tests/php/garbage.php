<?php

declare(strict_types=1);

// Test worker: writes text straight to STDOUT before the handshake, which corrupts the pipes relay.

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Worker\Worker;

fwrite(STDOUT, "hello world garbage\n");
$worker = Worker::create();
while (($request = $worker->waitPayload()) !== null) {
    $worker->respond($request);
}
