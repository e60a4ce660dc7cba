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

    [LoggerMessage(30, LogLevel.Error, "Reconcile pass failed: {Message}")]
    public static partial void ReconcileFailed(ILogger logger, string message, Exception exception);

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
