using HybridServing.Contracts.ControlPlane;

namespace HybridServing.Gateway.Tests.Hosts;

/// <summary>Builds routing tables tersely.</summary>
internal static class Tables
{
    public const string Base = "test/tiny";

    public static Engine Engine(string name, Uri url, bool healthy = true, int maxLoras = 2, string baseModel = Base) =>
        new() { Name = name, Url = url.ToString(), Healthy = healthy, MaxLoras = maxLoras, MaxCpuLoras = maxLoras * 2, BaseModels = { baseModel }, Node = "node-" + name };

    public static AdapterRoute Adapter(string name, string ns = "default", params (string Engine, Residency Residency)[] endpoints)
    {
        var a = new AdapterRoute { Name = name, Namespace = ns, BaseModel = Base, Resource = name, Rank = 8 };
        foreach (var (e, r) in endpoints) a.Endpoints.Add(new AdapterEndpoint { Engine = e, Residency = r });
        return a;
    }

    public static RoutingTable Table(long version, IEnumerable<Engine> engines, params AdapterRoute[] adapters)
    {
        var t = new RoutingTable { Version = version };
        t.Engines.AddRange(engines);
        t.Adapters.AddRange(adapters);
        return t;
    }
}
