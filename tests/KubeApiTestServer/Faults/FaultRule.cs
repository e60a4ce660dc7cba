namespace HybridServing.KubeApiTestServer.Faults;

/// <summary>
/// A fault for the next <see cref="Count"/> requests matching a verb and a resource: answer
/// <see cref="StatusCode"/> with a Kubernetes <c>Status</c> (the request then has no effect), and/or
/// wait <see cref="Delay"/> first. Register it with <see cref="KubeApiServer.InjectFault"/>.
/// </summary>
public sealed class FaultRule
{
    private int _remaining;
    private int _hits;

    /// <param name="verb">
    /// A Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection, or <c>*</c>.
    /// </param>
    /// <param name="resource">
    /// A plural (<c>loraadapters</c>), a subresource (<c>loraadapters/status</c>), or <c>*</c>.
    /// A plain plural does not match its subresource.
    /// </param>
    /// <param name="count">How many matching requests the fault applies to.</param>
    public FaultRule(string verb, string resource, int count)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(verb);
        ArgumentException.ThrowIfNullOrWhiteSpace(resource);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        Verb = verb;
        Resource = resource;
        Count = count;
        _remaining = count;
    }

    public string Verb { get; }
    public string Resource { get; }
    public int Count { get; }

    /// <summary>HTTP status to answer (409, 500, 429, 503...), or null to only add <see cref="Delay"/>.</summary>
    public int? StatusCode { get; init; }

    /// <summary>Latency added before the request is answered (or served).</summary>
    public TimeSpan Delay { get; init; }

    /// <summary>
    /// When set, a matching request waits for this task (after <see cref="Delay"/>) before it is answered
    /// or served: a test holds a request in flight for exactly as long as it needs, whatever the machine's speed.
    /// </summary>
    public Task? Hold { get; init; }

    /// <summary>Only requests for this namespace, when set.</summary>
    public string? Namespace { get; init; }

    /// <summary>Only requests for this object name, when set.</summary>
    public string? Name { get; init; }

    /// <summary>The Status message; a default names the fault.</summary>
    public string? Message { get; init; }

    /// <summary>Matching requests still to be affected.</summary>
    public int Remaining => Volatile.Read(ref _remaining);

    /// <summary>Requests this fault affected so far.</summary>
    public int Hits => Volatile.Read(ref _hits);

    internal bool Matches(string verb, string resource, string? subresource, string? ns, string? name) =>
        (Verb == "*" || string.Equals(Verb, verb, StringComparison.OrdinalIgnoreCase))
        && (Resource == "*" || string.Equals(Resource, subresource is null ? resource : resource + "/" + subresource, StringComparison.Ordinal))
        && (Namespace is null || Namespace == ns)
        && (Name is null || Name == name);

    /// <summary>Claims one use; false once the rule is spent (several requests may race for the last one).</summary>
    internal bool TryClaim()
    {
        while (true)
        {
            var remaining = Volatile.Read(ref _remaining);
            if (remaining <= 0)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _remaining, remaining - 1, remaining) == remaining)
            {
                Interlocked.Increment(ref _hits);
                return true;
            }
        }
    }
}
