<?php

/**
 * Owns the "the server answered with an error" case of the RPC client: an ERROR reply frame.
 */

declare(strict_types=1);

namespace RRGrpc\RPC;

final class ServiceException extends RPCException
{
    public function __construct(
        public readonly string $method,
        public readonly string $serverMessage,
        string $address,
    ) {
        // The same shape as spiral/goridge's message, so code matching on it keeps working.
        parent::__construct(\sprintf("Error '%s' on %s", $serverMessage, $address));
    }
}
