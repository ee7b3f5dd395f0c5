<?php

/**
 * Owns the failure type of the RPC client: the endpoint could not be reached, or a reply frame was
 * not a valid RPC reply (PROTOCOL.md §6.2–6.3).
 */

declare(strict_types=1);

namespace RRGrpc\RPC;

class RPCException extends \RuntimeException
{
}
