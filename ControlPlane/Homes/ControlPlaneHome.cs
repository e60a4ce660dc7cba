using HybridServing.Contracts.Resources;

namespace HybridServing.ControlPlane.Homes;

/// <summary>An engine the control plane drives, reached through its sidecar's gRPC endpoint (h2c).</summary>
internal sealed record EngineEndpoint(string Name, string Node, Uri SidecarUrl, IReadOnlyDictionary<string, string> Labels);

/// <summary>A declared LoraAdapter as its home read it.</summary>
/// <param name="BaseDirectory">Where a relative local repository is resolved from (the manifest's folder).</param>
/// <param name="Origin">Where it was declared (file path, or the API object), for messages.</param>
/// <param name="ReadError">Set when the object could be named but not read (e.g. a field of the wrong type): "field: message".</param>
internal sealed record DeclaredAdapter(LoraAdapter Resource, string? BaseDirectory, string Origin, string? ReadError = null)
{
    public string Key => $"{Resource.Metadata.NamespaceProperty ?? "default"}/{Resource.Metadata.Name}";
}

/// <summary>A problem with a source of declarations that is not tied to one object (e.g. a YAML file that does not parse).</summary>
internal sealed record DeclarationProblem(string Origin, string Message);

/// <summary>Everything a home declares at one moment.</summary>
internal sealed record HomeSnapshot(IReadOnlyList<DeclaredAdapter> Adapters, IReadOnlyList<EngineEndpoint> Engines, IReadOnlyList<DeclarationProblem> Problems)
{
    public static readonly HomeSnapshot Empty = new([], [], []);
}

/// <summary>
/// Where the control plane lives: the source of LoraAdapters and engines, and where status goes.
/// The local home reads a folder of YAML files and engines from configuration; a Kubernetes home
/// (informers, status subresource, Lease) plugs in beside it. The reconciler knows only this.
/// </summary>
internal interface IControlPlaneHome
{
    string Kind { get; }

    /// <summary>The latest declarations. Never null; <see cref="HomeSnapshot.Empty"/> until started.</summary>
    HomeSnapshot Current { get; }

    /// <summary>True once the first complete read happened: decisions wait for it (no placement from half a picture).</summary>
    bool Synced { get; }

    /// <summary>Raised after <see cref="Current"/> changed.</summary>
    event Action? Changed;

    Task StartAsync(CancellationToken cancellationToken);

    /// <summary>Records computed statuses (objects carry metadata + spec + status).</summary>
    ValueTask WriteStatusAsync(IReadOnlyList<LoraAdapter> adapters, CancellationToken cancellationToken);
}
