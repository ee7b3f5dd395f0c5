<?php

declare(strict_types=1);

// Test script for the PHP kit's RPC client (RRGrpc\RPC). Prints one JSON document on stdout.
//   php rpc_client.php <address> call <method> [<json argument>]   one JSON-codec call
//   php rpc_client.php <address> raw <method> [<bytes>]             one RAW-codec call
//   php rpc_client.php <address> every <plugin>                     every control-plane method in turn

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\RPC\RPC;

/** Workers that serve: a removed worker is listed (destroyed/stopping) until its process has exited. */
function active(array $workers): int
{
    return count(array_filter($workers, fn (array $w) => in_array($w['statusStr'], ['ready', 'working'], true)));
}

function outcome(callable $fn): array
{
    try {
        return ['ok' => true, 'result' => $fn()];
    } catch (\Throwable $e) {
        return ['ok' => false, 'error' => $e->getMessage(), 'class' => $e::class];
    }
}

[, $address, $mode] = $argv + [null, null, null];
if ($address === null || $mode === null) {
    fwrite(STDERR, "usage: rpc_client.php <address> call|raw|every ...\n");
    exit(2);
}
$rpc = RPC::create($address);

switch ($mode) {
    case 'call':
        $arg = isset($argv[4]) ? json_decode($argv[4], true, 512, JSON_THROW_ON_ERROR) : null;
        $out = outcome(fn () => $rpc->call($argv[3], $arg));
        break;
    case 'raw':
        $out = outcome(fn () => $rpc->callRaw($argv[3], $argv[4] ?? ''));
        break;
    case 'every':
        $plugin = $argv[3];
        $informer = $rpc->withServicePrefix('informer');
        $out = [
            'informer.List' => outcome(fn () => $informer->call('list', true)),
            'informer.Workers' => outcome(fn () => $rpc->call('informer.Workers', $plugin)),
            'informer.Workers unknown' => outcome(fn () => $rpc->call('informer.Workers', 'nope')),
            'informer.Jobs' => outcome(fn () => $rpc->call('informer.Jobs', $plugin)),
            'informer.AddWorker' => outcome(fn () => $rpc->call('informer.AddWorker', $plugin)),
            'workers after add' => outcome(fn () => active($rpc->call('informer.Workers', $plugin)['workers'])),
            'informer.RemoveWorker' => outcome(fn () => $rpc->call('informer.RemoveWorker', $plugin)),
            'workers after remove' => outcome(fn () => active($rpc->call('informer.Workers', $plugin)['workers'])),
            'informer.Activity' => outcome(fn () => $rpc->call('informer.Activity', $plugin)),
            'resetter.List' => outcome(fn () => $rpc->call('resetter.List', true)),
            'resetter.Reset' => outcome(fn () => $rpc->call('resetter.Reset', $plugin)),
            'resetter.Reset unknown' => outcome(fn () => $rpc->call('resetter.Reset', 'nope')),
            'rpc.Version' => outcome(fn () => $rpc->call('rpc.Version', true)),
            'rpc.Config' => outcome(fn () => json_decode(base64_decode($rpc->call('rpc.Config', true)), true)),
            'rpc.Config raw' => outcome(fn () => json_decode($rpc->callRaw('rpc.Config'), true)),
            'unknown method' => outcome(fn () => $rpc->call('informer.Nope', 'x')),
        ];
        break;
    default:
        fwrite(STDERR, "unknown mode $mode\n");
        exit(2);
}
echo json_encode($out, JSON_UNESCAPED_SLASHES), "\n";
