namespace HybridServing.KubeApiTestServer.Resources;

/// <summary>
/// One resource the test server serves, e.g. <c>hybridserving.io/v1alpha1 loraadapters</c>.
/// Requests for resources that are not registered answer 404 with a Kubernetes <c>Status</c>, as a
/// cluster without the CRD would.
/// </summary>
/// <param name="Group">API group; empty for the core group (<c>/api/v1</c>).</param>
/// <param name="Version">API version, e.g. <c>v1</c>.</param>
/// <param name="Plural">The path segment, e.g. <c>pods</c>.</param>
/// <param name="Kind">The object kind, e.g. <c>Pod</c>.</param>
/// <param name="Namespaced">False for cluster-scoped resources such as namespaces and nodes.</param>
/// <param name="HasStatusSubresource">
/// True when <c>.../{name}/status</c> exists: writes to the main resource then ignore <c>.status</c>,
/// status writes ignore everything else, and <c>metadata.generation</c> tracks spec changes.
/// </param>
public sealed record ApiResource(string Group, string Version, string Plural, string Kind, bool Namespaced, bool HasStatusSubresource)
{
    /// <summary>
    /// True for custom resources (served by a CRD in a real cluster). The real server refuses
    /// strategic merge patch for them (415), and returns the deleted object from DELETE.
    /// </summary>
    public bool IsCustom { get; init; }

    /// <summary>
    /// Extra field paths (besides <c>metadata.name</c> and <c>metadata.namespace</c>) that
    /// <c>fieldSelector</c> accepts, e.g. <c>spec.nodeName</c> for pods. Others answer 400 like a real server.
    /// </summary>
    public IReadOnlyList<string> SelectableFields { get; init; } = [];

    /// <summary>
    /// Whether DELETE answers with the deleted object (custom resources, pods) or with a success
    /// <c>Status</c> (most built-in kinds), as the real server does.
    /// </summary>
    public bool ReturnsDeletedObject { get; init; }

    /// <summary>
    /// True when <c>.../{name}/scale</c> serves an <c>autoscaling/v1</c> <c>Scale</c> (Deployments):
    /// <c>spec.replicas</c> is read and written through it, <c>status.replicas</c> is the object's status.
    /// </summary>
    public bool HasScaleSubresource { get; init; }

    /// <summary>Short names in discovery (<c>kubectl get po</c>, <c>kubectl get lora</c>).</summary>
    public IReadOnlyList<string> ShortNames { get; init; } = [];

    /// <summary>Categories in discovery (<c>kubectl get all</c> lists the resources in category <c>all</c>).</summary>
    public IReadOnlyList<string> Categories { get; init; } = [];

    /// <summary>
    /// Table columns after Name (what <c>kubectl get</c> shows); empty means Name and Age. For a custom
    /// resource these are the CRD's <c>additionalPrinterColumns</c>.
    /// </summary>
    public IReadOnlyList<PrinterColumn> PrinterColumns { get; init; } = [];

    /// <summary><c>group/version</c>, or just the version for the core group.</summary>
    public string ApiVersion => Group.Length == 0 ? Version : Group + "/" + Version;

    /// <summary>The kind of the list object, e.g. <c>PodList</c>.</summary>
    public string ListKind => Kind + "List";

    /// <summary>The name Kubernetes uses in messages: <c>pods</c> or <c>loraadapters.hybridserving.io</c>.</summary>
    public string QualifiedName => Group.Length == 0 ? Plural : Plural + "." + Group;

    /// <summary><c>metadata.generation</c> is maintained only where a status subresource separates spec from status.</summary>
    internal bool TracksGeneration => HasStatusSubresource;

    internal string Key => Group + "/" + Version + "/" + Plural;

    public override string ToString() => Key;
}
