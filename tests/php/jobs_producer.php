<?php

declare(strict_types=1);

// Test producer: php jobs_producer.php <rpc address> <command> [args...]; prints one JSON line.
//   push <pipeline> <job> <payload> [delay] [priority]   Queue::push, prints the queued task id
//   batch <pipeline> <job> <count>                         Queue::dispatchMany with a header on each
//   declare <name> <driver>                                Jobs::create, then lists the pipelines
//   pause|resume|destroy <pipeline>                        Jobs::pause / resume / destroy
//   list                                                   iterate Jobs; with each pipeline's stat
// A JobsException prints {"error": <message>} and exits 3.

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Jobs\Jobs;
use RRGrpc\Jobs\JobsException;
use RRGrpc\Jobs\Options;
use RRGrpc\RPC\RPC;

[, $address, $command] = $argv;
$args = array_slice($argv, 3);
$jobs = new Jobs(RPC::create($address));
try {
    $out = match ($command) {
        'push' => ['id' => $jobs->connect($args[0])->push(
            $args[1],
            $args[2],
            (new Options())->withDelay((int)($args[3] ?? 0))->withPriority((int)($args[4] ?? 10)),
        )->getId()],
        'batch' => ['ids' => array_map(
            static fn ($t) => $t->getId(),
            $jobs->connect($args[0])->dispatchMany(...array_map(
                static fn (int $i) => $jobs->connect($args[0])->create($args[1], "n$i")->withHeader('n', (string)$i),
                range(1, (int)$args[2]),
            )),
        )],
        'declare' => (function () use ($jobs, $args) {
            $jobs->create(['name' => $args[0], 'driver' => $args[1], 'priority' => 3, 'prefetch' => 10]);
            return ['pipelines' => array_keys(iterator_to_array($jobs))];
        })(),
        'pause', 'resume' => (function () use ($jobs, $args, $command) {
            $command === 'pause' ? $jobs->pause($args[0]) : $jobs->resume($args[0]);
            return ['paused' => $jobs->connect($args[0])->isPaused()];
        })(),
        'destroy' => ['destroyed' => $jobs->destroy($args[0])],
        'list' => array_map(static function ($queue) {
            $stat = $queue->getPipelineStat();
            return ['driver' => $stat->getDriver(), 'ready' => $stat->getReady(), 'active' => $stat->getActive()];
        }, iterator_to_array($jobs)),
    };
} catch (JobsException $e) {
    echo json_encode(['error' => $e->getMessage()]), "\n";
    exit(3);
}
echo json_encode($out), "\n";
