<?php

/**
 * Owns the one exception type of the Goridge layer: I/O failures and malformed frames.
 */

declare(strict_types=1);

namespace RRGrpc\Goridge;

class RelayException extends \RuntimeException
{
}
