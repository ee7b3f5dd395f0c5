<?php

declare(strict_types=1);

// Test worker: answers requests with "please restart me" ({"stop":true} context, empty body).
// With RR_STOP_EVERY=N only every Nth request gets that answer; the others are echoed.
// After asking to be restarted it keeps waiting for the server's stop control and then exits.

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Worker\Worker;

$every = max(1, (int)(getenv('RR_STOP_EVERY') ?: 1));
$count = 0;
$worker = Worker::create();
while (($request = $worker->waitPayload()) !== null) {
    if (++$count % $every === 0) {
        $worker->stop();
    } else {
        $worker->respond($request);
    }
}
