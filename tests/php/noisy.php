<?php

declare(strict_types=1);

// Test worker: `echo`es text before the handshake and inside every request, then echoes the request.
// The kit's output buffer must send that text to STDERR so the STDOUT relay stays intact.

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Worker\Worker;

$worker = Worker::create();
echo "noisy.php booted\n";
while (($request = $worker->waitPayload()) !== null) {
    echo 'noisy.php got ', $request->body, "\n";
    print_r(['body' => $request->body]);
    $worker->respond($request);
}
