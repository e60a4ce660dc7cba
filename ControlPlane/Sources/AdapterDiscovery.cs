using HybridServing.Contracts.Resources;

namespace HybridServing.ControlPlane.Sources;

/// <summary>One adapter found in a source: what placement and the sidecars need to know.</summary>
/// <param name="Name">The adapter's name: its directory name, its <c>lora_name</c> on engines and the model name clients use.</param>
/// <param name="Uri">Where sidecars load it from (an absolute local path for local sources).</param>
internal sealed record DiscoveredAdapter(string Name, string Uri, int Rank, IReadOnlyList<string> TargetModules, long SizeBytes, string Digest, string? ConfigBaseModel);

/// <summary>An adapter the source names that cannot be used, and why.</summary>
internal sealed record AdapterFailure(string Name, string Reason, string Message);

/// <summary>What listing a source found. <see cref="SourceError"/> means the source itself failed (nothing usable).</summary>
internal sealed record DiscoveryResult(IReadOnlyList<DiscoveredAdapter> Adapters, IReadOnlyList<AdapterFailure> Failures, string? SourceErrorReason = null, string? SourceError = null)
{
    public static DiscoveryResult Unavailable(string reason, string message) => new([], [], reason, message);
}

/// <summary>Lists a LoraAdapter's source and reads each adapter's metadata.</summary>
internal interface IAdapterDiscovery
{
    /// <param name="baseDirectory">Where relative local repositories are resolved from (the manifest's folder), if any.</param>
    Task<DiscoveryResult> DiscoverAsync(AdapterSource source, string? baseDirectory, CancellationToken cancellationToken);
}
