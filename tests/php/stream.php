<?php

declare(strict_types=1);

// Test worker: streamed replies. Body "N" or "N:D": N frames, D milliseconds apart (default 0).
// Frame i (1..N) has body "chunk <i>" and the request's context; all but the last carry the STREAM
// bit, every 5th streamed frame also PING (pipes) and waits for the PONG. When the server sends a
// stream STOP the rest is skipped and an empty final frame acknowledges it.

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Worker\Payload;
use RRGrpc\Worker\Worker;

$worker = Worker::create();
while (($request = $worker->waitPayload()) !== null) {
    [$count, $delay] = array_map('intval', explode(':', $request->body . ':0'));
    $chunks = (static function () use ($count, $delay, $request): Generator {
        for ($i = 1; $i <= $count; $i++) {
            if ($i > 1 && $delay > 0) {
                usleep(1000 * $delay);
            }
            yield new Payload("chunk $i", $request->header);
        }
    })();
    $worker->respondStream($chunks);
}
