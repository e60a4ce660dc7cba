using Microsoft.Extensions.Logging;

namespace HybridServing.EngineSidecar.Telemetry;

/// <summary>Source-generated log messages with stable event ids. Secrets (engine API key, Hub token,
/// S3 credentials, URL query strings) never appear in them.</summary>
internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "Waiting for the engine at {EngineUrl} to become healthy (timeout {TimeoutSeconds} s).")]
    public static partial void WaitingForEngine(ILogger logger, string engineUrl, double timeoutSeconds);

    [LoggerMessage(2, LogLevel.Information, "Engine at {EngineUrl} is healthy.")]
    public static partial void EngineHealthy(ILogger logger, string engineUrl);

    [LoggerMessage(3, LogLevel.Critical, "Engine at {EngineUrl} did not become healthy within {TimeoutSeconds} s; stopping so the pod restarts.")]
    public static partial void EngineHealthTimeout(ILogger logger, string engineUrl, double timeoutSeconds);

    [LoggerMessage(4, LogLevel.Warning, "Engine at {EngineUrl} became unhealthy.")]
    public static partial void EngineUnhealthy(ILogger logger, string engineUrl);

    [LoggerMessage(10, LogLevel.Information, "Loaded adapter {Adapter} from {Path} (in place: {InPlace}) in {Milliseconds} ms.")]
    public static partial void AdapterLoaded(ILogger logger, string adapter, string path, bool inPlace, long milliseconds);

    [LoggerMessage(11, LogLevel.Warning, "Adapter {Adapter} failed ({Reason}): {Message}")]
    public static partial void AdapterFailed(ILogger logger, string adapter, string reason, string message);

    [LoggerMessage(12, LogLevel.Information, "Unloaded adapter {Adapter}.")]
    public static partial void AdapterUnloaded(ILogger logger, string adapter);

    [LoggerMessage(13, LogLevel.Warning, "Engine lost adapter {Adapter}; reloading it (drift repair).")]
    public static partial void DriftDetected(ILogger logger, string adapter);

    [LoggerMessage(14, LogLevel.Warning, "Unloading adapter {Adapter} failed: {Message}")]
    public static partial void UnloadFailed(ILogger logger, string adapter, string message);

    [LoggerMessage(20, LogLevel.Information, "Downloaded {Source} ({Bytes} bytes) into cache as {Digest} in {Milliseconds} ms.")]
    public static partial void Downloaded(ILogger logger, string source, long bytes, string digest, long milliseconds);

    [LoggerMessage(21, LogLevel.Information, "Evicted cached artifact {Digest} ({Bytes} bytes) to stay within the cache budget.")]
    public static partial void Evicted(ILogger logger, string digest, long bytes);

    [LoggerMessage(22, LogLevel.Warning, "Artifact cache holds {Bytes} bytes, above its budget of {Budget}, but every remaining artifact is in use.")]
    public static partial void CacheOverBudget(ILogger logger, long bytes, long budget);

    [LoggerMessage(30, LogLevel.Warning, "Reconcile pass failed{Repeats}: {Message}")]
    private static partial void ReconcileFailedOnce(ILogger logger, string repeats, string message);

    [LoggerMessage(32, LogLevel.Debug, "Reconcile pass failure, in full")]
    private static partial void ReconcileFailedDetail(ILogger logger, Exception exception);

    /// <summary>
    /// A failing pass, logged once per backoff step (the 1st, 2nd, 4th, 8th … failure in a row, and whenever the
    /// message changes) with its reason; the stack trace only at Debug.
    /// </summary>
    public static void ReconcileFailed(ILogger logger, FailureRepeats repeats, string message, Exception exception)
    {
        if (repeats.ShouldLog(message) is not { } count) return;
        ReconcileFailedOnce(logger, count > 1 ? $" ({count} times in a row)" : "", message);
        ReconcileFailedDetail(logger, exception);
    }

    [LoggerMessage(31, LogLevel.Warning, "Engine call {Operation} failed transiently (attempt {Attempt} of {MaxAttempts}): {Message}")]
    public static partial void EngineCallRetry(ILogger logger, string operation, int attempt, int maxAttempts, string message);

    [LoggerMessage(40, LogLevel.Information, "Read config file {Path}: {EnsureExist} to ensure, {EnsureNotExist} to remove.")]
    public static partial void ConfigRead(ILogger logger, string path, int ensureExist, int ensureNotExist);

    [LoggerMessage(41, LogLevel.Error, "Config file {Path} is invalid, keeping the previous desired set: {Message}")]
    public static partial void ConfigInvalid(ILogger logger, string path, string message);

    [LoggerMessage(42, LogLevel.Warning, "Adapter {Adapter} is listed in both ensureExist and ensureNotExist; it is skipped (neither loaded nor unloaded).")]
    public static partial void ConfigConflict(ILogger logger, string adapter);

    [LoggerMessage(43, LogLevel.Warning, "Config file entry skipped: {Message}")]
    public static partial void ConfigEntrySkipped(ILogger logger, string message);

    [LoggerMessage(44, LogLevel.Warning, "Config file {Path} names engine {ConfigEngine} (host/port); the sidecar now talks to it instead of {PreviousEngine}.")]
    public static partial void ConfigEngineChanged(ILogger logger, string path, string configEngine, string previousEngine);
}

/// <summary>Counts one failure in a row; a success resets it. Thread-safe.</summary>
internal sealed class FailureRepeats
{
    private readonly Lock _lock = new();
    private string? _last;
    private int _count;

    /// <summary>The failure's number in the current run when it should be logged (1, 2, 4, 8, … or a new message), else null.</summary>
    public int? ShouldLog(string message)
    {
        lock (_lock)
        {
            if (message != _last) (_last, _count) = (message, 0);
            _count++;
            return (_count & (_count - 1)) == 0 ? _count : null;
        }
    }

    public void Succeeded()
    {
        lock (_lock) (_last, _count) = (null, 0);
    }
}
