namespace HybridServing.Contracts.Sidecar;

/// <summary>The <c>AdapterStatus.reason</c>s (sidecar.proto) that retrying cannot fix: the sidecar waits for a new spec,
/// and the ControlPlane reports them at once instead of backing off.</summary>
public static class PermanentFailures
{
    public static bool Contains(string? reason) =>
        reason is "InvalidName" or "InvalidSource" or "PathNotAllowed" or "AddressNotAllowed" or "BaseModelMismatch" or "RankTooLarge";
}
