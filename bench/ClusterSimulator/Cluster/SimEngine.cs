using System.Collections.Frozen;
using HybridServing.Contracts.Metrics;
using HybridServing.Gateway.Routing;
using HybridServing.MockEngine.Performance;

namespace HybridServing.ClusterSimulator.Cluster;

/// <summary>
/// One engine pod: the MockEngine's model on the virtual clock, the node's local artifact cache
/// (what the sidecar has downloaded), and what the gateway knows of it (route, scraped load, its
/// own in-flight count).
/// </summary>
internal sealed class SimEngine
{
    public SimEngine(int index, VirtualEngineDriver driver, string baseModel)
    {
        Index = index;
        Name = "engine-" + index.ToString("D3", System.Globalization.CultureInfo.InvariantCulture);
        Driver = driver;
        Route = new EngineRoute(Name, new Uri($"http://{Name}.sim:8000"), new[] { baseModel }.ToFrozenSet(StringComparer.Ordinal),
            Healthy: true, driver.Model.Options.MaxLoras, driver.Model.Options.MaxCpuLoras);
    }

    public int Index { get; }
    public string Name { get; }
    public VirtualEngineDriver Driver { get; }
    public EngineModel Model => Driver.Model;
    public EngineRoute Route { get; }
    public bool Alive { get; set; } = true;
    /// <summary>False while the engine sleeps (vLLM sleep mode): the gateway does not route to it.</summary>
    public bool Awake { get; set; } = true;

    /// <summary>Adapters whose artifacts are on the node's local disk.</summary>
    public HashSet<int> Disk { get; } = [];
    /// <summary>Adapters registered with the engine (vLLM's load_lora_adapter done).</summary>
    public HashSet<int> Registered { get; } = [];
    /// <summary>Adapters being downloaded from the object store, with their completion time.</summary>
    public Dictionary<int, DateTimeOffset> Fetching { get; } = [];
    /// <summary>Requests routed here that wait for their adapter's download and registration.</summary>
    public Dictionary<int, List<SimRequest>> Held { get; } = [];

    /// <summary>Requests the gateway has sent here and not yet seen finish (held ones included).</summary>
    public int InFlight { get; set; }
    /// <summary>The last scrape of the engine's metrics.</summary>
    public EngineLoadSnapshot? Load { get; set; }

    public void Scrape() => Load = new EngineLoadSnapshot(Model.RunningCount, Model.WaitingCount, Model.KvCacheUsage,
        Model.Options.MaxLoras, Model.RunningAdapters, Model.WaitingAdapters);
}

/// <summary>A request of the trace on its way through the simulated cluster.</summary>
internal sealed class SimRequest(int id, double arrival, int adapter, int prompt, int output, bool measured)
{
    public int Id { get; } = id;
    /// <summary>Virtual seconds since the start of the run; latency is measured from here, through retries.</summary>
    public double Arrival { get; } = arrival;
    public int Adapter { get; } = adapter;
    public int PromptTokens { get; } = prompt;
    public int OutputTokens { get; } = output;
    public bool Measured { get; } = measured;
    public int Attempts { get; set; }
    /// <summary>Virtual second it was retried after its engine was lost, if it was.</summary>
    public double? RetriedAt { get; set; }
    public SimEngine? Engine { get; set; }
    public ModelRequest? Current { get; set; }
    public double? Ttft { get; set; }
    public double? Tpot { get; set; }
    public bool Done { get; set; }
    /// <summary>Virtual second it was last submitted to an engine.</summary>
    public double Submitted { get; set; }
    /// <summary>Virtual seconds from its submission to its engine to its last token (what the gateway times as service).</summary>
    public double? Service { get; set; }
}
