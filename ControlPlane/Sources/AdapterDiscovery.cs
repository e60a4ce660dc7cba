using HybridServing.Contracts.Resources;

namespace HybridServing.ControlPlane.Sources;

/// <summary>One adapter found in a source: what placement and the sidecars need to know.</summary>
/// <param name="Name">The adapter's name: its directory name, its <c>lora_name</c> on engines and the model name clients use.</param>
/// <param name="Uri">Where sidecars load it from, in a form the sidecar parses: an absolute local path, <c>s3://bucket/key-prefix</c>,
/// <c>hf://org/repo[/subfolder]@revision</c> or an <c>http(s)://</c> base URL.</param>
/// <param name="SizeBytes">Tensor bytes for local adapters; the weights object's length for remote ones.</param>
/// <param name="Digest">sha256 of the weights file (lowercase hex), or empty when the source does not provide one without a full download.</param>
internal sealed record DiscoveredAdapter(string Name, string Uri, int Rank, IReadOnlyList<string> TargetModules, long SizeBytes, string Digest, string? ConfigBaseModel);

/// <summary>An adapter the source names that cannot be used, and why.</summary>
internal sealed record AdapterFailure(string Name, string Reason, string Message);

/// <summary>What listing a source found. <see cref="SourceError"/> means the source itself failed (nothing usable).</summary>
internal sealed record DiscoveryResult(IReadOnlyList<DiscoveredAdapter> Adapters, IReadOnlyList<AdapterFailure> Failures, string? SourceErrorReason = null, string? SourceError = null)
{
    public static DiscoveryResult Unavailable(string reason, string message) => new([], [], reason, message);
}

/// <summary>What to list: the source, and what it is resolved against.</summary>
/// <param name="BaseDirectory">Where relative local repositories are resolved from (the manifest's folder), if any.</param>
/// <param name="CredentialsSecret"><c>spec.credentialsSecretRef.name</c>, if any.</param>
/// <param name="Namespace">The LoraAdapter's namespace (where its secret lives).</param>
internal sealed record DiscoveryRequest(AdapterSource Source, string? BaseDirectory = null, string? CredentialsSecret = null, string Namespace = "default");

/// <summary>Lists a LoraAdapter's source and reads each adapter's metadata.</summary>
internal interface IAdapterDiscovery
{
    Task<DiscoveryResult> DiscoverAsync(DiscoveryRequest request, CancellationToken cancellationToken);
}
