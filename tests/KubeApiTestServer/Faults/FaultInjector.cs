namespace HybridServing.KubeApiTestServer.Faults;

/// <summary>The registered faults, consulted in registration order; the first live match applies.</summary>
internal sealed class FaultInjector
{
    private readonly Lock _gate = new();
    private readonly List<FaultRule> _rules = [];

    public void Add(FaultRule rule)
    {
        lock (_gate)
        {
            _rules.Add(rule);
        }
    }

    public void Clear()
    {
        lock (_gate)
        {
            _rules.Clear();
        }
    }

    public FaultRule? Claim(string verb, string resource, string? subresource, string? ns, string? name)
    {
        lock (_gate)
        {
            _rules.RemoveAll(r => r.Remaining <= 0);
            return _rules.FirstOrDefault(r => r.Matches(verb, resource, subresource, ns, name) && r.TryClaim());
        }
    }
}
