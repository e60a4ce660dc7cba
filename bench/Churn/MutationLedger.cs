using HybridServing.KubeApiTestServer.Diagnostics;

namespace HybridServing.Bench.Churn;

/// <summary>
/// The ControlPlane's mutating Kubernetes API calls (create, update, patch, delete) during one churn,
/// read from the API test server's request log: every call the server answered, failed ones included
/// (a 409 is still a call), timed by the server. The harness's own writes are left out by the caller.
/// </summary>
internal sealed class MutationLedger(IReadOnlyList<RequestRecord> calls, DateTimeOffset from)
{
    /// <summary>The calls, oldest first.</summary>
    public IReadOnlyList<RequestRecord> Calls { get; } = [.. calls.OrderBy(c => c.Time)];

    public DateTimeOffset From { get; } = from;

    /// <summary>What a call is for, in the ControlPlane's terms (the categories of the per-resource table).</summary>
    public static string Purpose(RequestRecord r) => (r.Resource, r.Subresource, r.Verb) switch
    {
        ("loraadapters", "status", _) => "status",
        ("loraadapters", null, "patch" or "update") => "finalizer",
        ("events", _, _) => "event",
        ("leases", _, _) => "leader lease",
        ("services", _, _) => "adapter Service",
        ("endpointslices", _, _) => "adapter EndpointSlice",
        _ => "other",
    };

    /// <summary>The request as the API sees it, e.g. <c>update loraadapters/status</c>.</summary>
    public static string Request(RequestRecord r) =>
        $"{r.Verb} {(r.Group is { Length: > 0 } g ? g + "/" : "")}{r.Resource}{(r.Subresource is { } s ? "/" + s : "")}";

    public IEnumerable<RequestRecord> Until(DateTimeOffset until) => Calls.Where(c => c.Time <= until);

    /// <summary>Calls per second on average between <see cref="From"/> and <paramref name="until"/>.</summary>
    public double AveragePerSecond(DateTimeOffset until)
    {
        var seconds = (until - From).TotalSeconds;
        return seconds > 0 ? Until(until).Count() / seconds : 0;
    }

    /// <summary>Calls in each whole second after <see cref="From"/> (second 0 first) up to <paramref name="until"/>.</summary>
    public int[] PerSecond(DateTimeOffset until)
    {
        var buckets = new int[Math.Max(1, (int)Math.Ceiling((until - From).TotalSeconds))];
        foreach (var c in Until(until))
            buckets[Math.Clamp((int)(c.Time - From).TotalSeconds, 0, buckets.Length - 1)]++;
        return buckets;
    }
}
