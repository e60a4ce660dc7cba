using System.Globalization;
using HybridServing.Bench.Results;
using HybridServing.Contracts.Peft;
using HybridServing.TestKit;

namespace HybridServing.Bench.Hosting;

/// <summary>
/// Starts the processes a benchmark measures: MockEngines, the plain YARP pass-through and the
/// HybridServing Gateway, each a separate process on 127.0.0.1. Every engine serves the tiny test
/// model with real PEFT adapters, so direct, pass-through and gateway requests do the same engine work.
/// </summary>
internal sealed class BenchServices : IAsyncDisposable
{
    public const string BaseModel = "test/tiny";
    public const string Namespace = "default";
    public const string TenantApiKey = "bench-key";

    private readonly List<IAsyncDisposable> _owned = [];
    private readonly string _adapterRoot = Path.Combine(Path.GetTempPath(), "hybridserving-bench", "adapters-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));

    /// <summary>A MockEngine with adapter <paramref name="adapter"/> loaded at start (vLLM's <c>--lora-modules</c>).</summary>
    public async Task<ChildProcess> StartEngineAsync(string name, string adapter, bool zeroLatency, int seed, params string[] extraArgs)
    {
        var dir = Path.Combine(_adapterRoot, adapter);
        if (!Directory.Exists(dir)) PeftAdapterWriter.Write(dir, BaseModelShape.For(BaseModel), 8, ["q_proj", "v_proj"], seed);
        var port = FreePorts.Get();
        List<string> args =
        [
            "--model", BaseModel, "--host", "127.0.0.1", "--port", port.ToString(CultureInfo.InvariantCulture),
            "--enable-lora", "--max-loras", "1", "--max-lora-rank", "8", "--lora-modules", $"{adapter}={dir}",
            "--mock-seed", seed.ToString(CultureInfo.InvariantCulture),
        ];
        if (zeroLatency) args.Add("--mock-zero-latency");
        args.AddRange(extraArgs);
        Progress.Log($"starting {name}: MockEngine {string.Join(' ', args)}");
        var engine = await ChildProcess.StartAsync(name, RepoPaths.ServiceDll("MockEngine"), args, FreePorts.Url(port));
        _owned.Add(engine);
        return engine;
    }

    /// <summary>The baseline: YARP MapForwarder to <paramref name="upstream"/>, nothing else.</summary>
    public async Task<ChildProcess> StartPassThroughAsync(Uri upstream, bool serverGc)
    {
        var port = FreePorts.Get();
        Progress.Log($"starting YARP pass-through on :{port} -> {upstream}");
        // The caller passes the gateway's GC mode (server GC in a Web SDK app): memory figures must compare proxies, not GCs.
        var env = new Dictionary<string, string> { ["DOTNET_gcServer"] = serverGc ? "1" : "0" };
        var proxy = await ChildProcess.StartAsync("pass-through", null,
            [PassThroughProxy.Command, "--port", port.ToString(CultureInfo.InvariantCulture), "--upstream", upstream.ToString()], FreePorts.Url(port), env);
        _owned.Add(proxy);
        return proxy;
    }

    /// <summary>An in-bench AdapterRouter serving one fixed routing table.</summary>
    public async Task<FakeRouter> StartRouterAsync(Contracts.ControlPlane.RoutingTable table)
    {
        var router = await FakeRouter.StartAsync(table);
        _owned.Add(router);
        return router;
    }

    /// <summary>
    /// The HybridServing Gateway as Program.cs runs it, configured only through its documented keys:
    /// the router address and one tenant (API key <see cref="TenantApiKey"/>, namespace default).
    /// Healthy = it holds the first routing table.
    /// </summary>
    public async Task<ChildProcess> StartGatewayAsync(Uri router, IReadOnlyDictionary<string, string>? extraEnvironment = null)
    {
        var port = FreePorts.Get();
        var env = new Dictionary<string, string>
        {
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}",
            ["services__controlplane__grpc__0"] = router.ToString(),
            ["Gateway__Tenants__0__Name"] = "bench",
            ["Gateway__Tenants__0__ApiKey"] = TenantApiKey,
            ["Gateway__Tenants__0__Namespaces__0"] = Namespace,
        };
        foreach (var (k, v) in extraEnvironment ?? new Dictionary<string, string>()) env[k] = v;
        Progress.Log($"starting Gateway on :{port} (router {router}, one tenant)");
        var gateway = await ChildProcess.StartAsync("gateway", RepoPaths.ServiceDll("Gateway"), [], FreePorts.Url(port), env);
        _owned.Add(gateway);
        return gateway;
    }

    /// <summary>The gateway's GC mode, from its runtimeconfig.json (System.GC.Server), unless the environment overrides it.</summary>
    public static bool GatewayUsesServerGc()
    {
        var config = Path.ChangeExtension(RepoPaths.ServiceDll("Gateway"), ".runtimeconfig.json");
        if (!File.Exists(config)) return false;
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(config));
        return node?["runtimeOptions"]?["configProperties"]?["System.GC.Server"]?.GetValue<bool>() ?? false;
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = _owned.Count - 1; i >= 0; i--) await _owned[i].DisposeAsync();
        _owned.Clear();
        try { if (Directory.Exists(_adapterRoot)) Directory.Delete(_adapterRoot, recursive: true); }
        catch (IOException) { }
    }
}
