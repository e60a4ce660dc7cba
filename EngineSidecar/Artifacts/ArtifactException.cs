namespace HybridServing.EngineSidecar.Artifacts;

/// <summary>Machine-readable failure reasons reported in <c>AdapterStatus.reason</c> and the failures metric.
/// Stable strings: the ControlPlane and dashboards match on them.</summary>
internal static class FailureReasons
{
    public const string InvalidName = "InvalidName";
    public const string InvalidSource = "InvalidSource";
    public const string PathNotAllowed = "PathNotAllowed";
    /// <summary>An http(s) or Hub download would connect to a loopback, link-local or private address (SSRF guard).</summary>
    public const string AddressNotAllowed = "AddressNotAllowed";
    public const string NotFound = "NotFound";
    public const string InvalidAdapter = "InvalidAdapter";
    public const string RankTooLarge = "RankTooLarge";
    public const string BaseModelMismatch = "BaseModelMismatch";
    public const string DigestMismatch = "DigestMismatch";
    public const string TooLarge = "TooLarge";
    public const string DownloadFailed = "DownloadFailed";
    public const string DownloadTimeout = "DownloadTimeout";
    public const string Unauthorized = "Unauthorized";
    /// <summary>The Secret named by spec.credentialsSecretRef is missing, unreadable, or lacks a key the source needs
    /// (the ControlPlane's reason of the same name). Retried with backoff: the Secret may be created later.</summary>
    public const string CredentialsMissing = "CredentialsMissing";
    public const string CacheFull = "CacheFull";
    public const string EngineRejected = "EngineRejected";
    public const string EngineUnavailable = "EngineUnavailable";
    public const string UnloadFailed = "UnloadFailed";
    public const string InvalidConfig = "InvalidConfig";
    /// <summary>File mode: an id in both ensureExist and ensureNotExist (skipped).</summary>
    public const string ConfigConflict = "ConfigConflict";

    /// <summary>Failures that cannot heal without a new spec: retrying them only spams the engine.</summary>
    public static bool IsPermanent(string reason) => Contracts.Sidecar.PermanentFailures.Contains(reason);
}

/// <summary>An artifact could not be resolved; <see cref="Reason"/> is one of <see cref="FailureReasons"/>.</summary>
internal sealed class ArtifactException(string reason, string message, Exception? inner = null) : Exception(message, inner)
{
    public string Reason { get; } = reason;
}
