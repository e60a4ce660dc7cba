using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using Google.Protobuf;
using HybridServing.Bench.Hosting;
using HybridServing.Contracts.ControlPlane;
using HybridServing.LiveValidation.Configuration;

namespace HybridServing.LiveValidation.Live;

/// <summary>
/// The product as a developer runs it: the AppHost's own Aspire app model (<see cref="AspireStack"/>)
/// starts M MockEngines, one EngineSidecar each, the ControlPlane (local home, watching a manifests
/// folder) and the Gateway, each a process built in this configuration. On top of the AppHost's
/// wiring it sets only configuration the product exposes: the engines' time scale and rank limit
/// (AppHost --engine-arg), the picker, demand reporting and the control plane's timing (virtual
/// intervals ÷ time scale) as environment on the named resources.
/// </summary>
internal sealed class LiveStack : IAsyncDisposable
{
    private static readonly JsonParser RoutesParser = new(JsonParser.Settings.Default.WithIgnoreUnknownFields(true));

    private readonly AspireStack _stack;

    private LiveStack(AspireStack stack)
    {
        _stack = stack;
        Gateway = stack.Endpoint("gateway");
        ControlPlane = stack.Endpoint("controlplane");
    }

    public Uri Gateway { get; }
    public Uri ControlPlane { get; }
    public static string ApiKey => AspireStack.ApiKey;

    public static async Task<LiveStack> StartAsync(ValidationOptions o, LivePolicy policy, int maxLoraRank, string adapterRoot, string workDirectory,
        CancellationToken cancellationToken)
    {
        var manifests = Path.Combine(workDirectory, "manifests");
        if (Directory.Exists(manifests)) Directory.Delete(manifests, recursive: true);
        Directory.CreateDirectory(manifests);
        foreach (var (file, yaml) in policy.Manifests) File.WriteAllText(Path.Combine(manifests, file), yaml);
        var state = Path.Combine(workDirectory, "state");
        if (Directory.Exists(state)) Directory.Delete(state, recursive: true);

        string[] args = [
            "--manifests", manifests, "--adapter-root", adapterRoot, "--engines", Invariant(o.Engines), .. AspireStack.PortArgs(o.Engines),
            "--max-loras", Invariant(o.MaxLoras), "--max-cpu-loras", Invariant(o.MaxCpuLoras), "--state-dir", state,
            $"--engine-arg=--max-lora-rank", $"--engine-arg={Invariant(maxLoraRank)}",
            $"--engine-arg=--mock-time-scale", $"--engine-arg={Invariant(o.TimeScale)}"];
        var stack = await AspireStack.StartAsync(args, Environment(o, policy, maxLoraRank), Path.Combine(workDirectory, $"stack-{policy.Name}.log"),
            TimeSpan.FromSeconds(120), cancellationToken);
        return new LiveStack(stack);
    }

    /// <summary>Throws <see cref="StackFailedException"/> when a component exits on its own (the run is then void).</summary>
    public Task WatchAsync(CancellationToken cancellationToken) => _stack.WatchAsync(cancellationToken);

    /// <summary>
    /// Waits until the control plane's routing table has every adapter LOADED on at least
    /// <see cref="LivePolicy.ReplicasPerAdapter"/> engines with nothing still loading, and the gateway
    /// lists every adapter: the placement the policy asks for is in force before traffic starts.
    /// </summary>
    public async Task<RoutingTable> WaitPlacedAsync(LivePolicy policy, IReadOnlyCollection<string> adapters, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
        var clock = Stopwatch.StartNew();
        var status = "no routing table yet";
        while (clock.Elapsed < timeout)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                var table = RoutesParser.Parse<RoutingTable>(await http.GetStringAsync(new Uri(ControlPlane, "v1/routes"), cancellationToken));
                var loaded = table.Adapters.ToDictionary(a => a.Name, a => a.Endpoints.Count(e => e.Residency == Residency.Loaded));
                var loading = table.Adapters.Sum(a => a.Endpoints.Count(e => e.Residency == Residency.Loading));
                var short_ = adapters.Count(a => loaded.GetValueOrDefault(a) < policy.ReplicasPerAdapter);
                var listed = await GatewayModelsAsync(http, cancellationToken);
                var missing = adapters.Count(a => !listed.Contains(a));
                if (short_ == 0 && loading == 0 && missing == 0) return table;
                status = $"{short_} adapters below {policy.ReplicasPerAdapter} loaded replicas, {loading} replicas loading, {missing} not listed by the gateway";
            }
            catch (HttpRequestException e)
            {
                status = e.Message;
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                status = "a status request timed out";
            }
            await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken);
        }
        throw new TimeoutException($"{policy.Name}: placement not in force after {timeout.TotalSeconds:0} s ({status}).");
    }

    /// <summary>The control plane's routing table now (what the gateway routes on).</summary>
    public async Task<RoutingTable> RoutesAsync(CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        return RoutesParser.Parse<RoutingTable>(await http.GetStringAsync(new Uri(ControlPlane, "v1/routes"), cancellationToken));
    }

    /// <summary>The gateway's Prometheus text (its overflow counters and wait histogram go into the report).</summary>
    public async Task<string> GatewayMetricsAsync(CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        return await http.GetStringAsync(new Uri(Gateway, "metrics"), cancellationToken);
    }

    /// <summary>Engine → loaded adapters, one engine per line, for looking into a run after the fact.</summary>
    public static string Describe(RoutingTable table) => string.Join("\n", table.Adapters
        .SelectMany(a => a.Endpoints.Where(e => e.Residency == Residency.Loaded).Select(e => (e.Engine, a.Name)))
        .GroupBy(x => x.Engine).OrderBy(g => g.Key, StringComparer.Ordinal)
        .Select(g => $"{g.Key} ({g.Count()}): {string.Join(" ", g.Select(x => x.Name).Order(StringComparer.Ordinal))}")) + "\n";

    private async Task<HashSet<string>> GatewayModelsAsync(HttpClient http, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync(new Uri(Gateway, "v1/models"), cancellationToken);
        if (!response.IsSuccessStatusCode) return [];
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
        return [.. doc.RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()!)];
    }

    /// <summary>Resource name → the product configuration this policy and time scale need on it.</summary>
    private static Dictionary<string, IReadOnlyDictionary<string, string>> Environment(ValidationOptions o, LivePolicy policy, int maxLoraRank)
    {
        // Per-request logs at this rate cost CPU the 2-core machine needs for serving.
        const string quiet = "Logging__LogLevel__Default";
        var env = new Dictionary<string, IReadOnlyDictionary<string, string>>(StringComparer.Ordinal);
        var controlPlane = new Dictionary<string, string>
        {
            [quiet] = "Warning",
            // The control plane sees wall-clock rates: a virtual rate × the time scale.
            ["ControlPlane__RatePerReplica"] = Invariant(o.RatePerReplica * o.TimeScale),
            ["ControlPlane__DemandWindow"] = o.Wall(o.DemandWindow).ToString("c", CultureInfo.InvariantCulture),
            ["ControlPlane__ResyncInterval"] = o.Wall(o.ControlInterval).ToString("c", CultureInfo.InvariantCulture),
            // The simulator keeps an overflow grant for the product's GrantTtl in virtual seconds.
            ["ControlPlane__Overflow__GrantTtl"] = o.Wall(SimulatorDefaults.OverflowGrantTtl).ToString("c", CultureInfo.InvariantCulture),
        };
        for (var i = 0; i < o.Engines; i++)
        {
            env[$"engine-{i}"] = new Dictionary<string, string> { [quiet] = "Warning" };
            env[$"engine-{i}-sidecar"] = new Dictionary<string, string>
            {
                [quiet] = "Warning",
                ["Sidecar__MaxLoraRank"] = Invariant(maxLoraRank),
                ["Sidecar__MaxCpuLoras"] = Invariant(policy.ReportedMaxCpuLoras),
            };
            controlPlane[$"ControlPlane__Engines__{i}__Labels__{LivePolicy.EngineLabel}"] = $"engine-{i}";
        }
        env["controlplane"] = controlPlane;
        var gateway = new Dictionary<string, string>
        {
            [quiet] = "Warning",
            ["Gateway__Picking__Policy"] = policy.Picker,
            ["Gateway__Picking__Seed"] = Invariant(o.Seed),
            ["Gateway__Load__ScrapeInterval"] = TimeSpan.FromSeconds(ValidationOptions.LiveScrapeSeconds).ToString("c", CultureInfo.InvariantCulture),
            ["Gateway__Demand__ReportInterval"] = (policy.ReportsDemand ? o.Wall(o.ReportInterval) : TimeSpan.Zero).ToString("c", CultureInfo.InvariantCulture),
            ["Gateway__Picking__Overflow__RefusalCooldown"] = o.Wall(SimulatorDefaults.OverflowRefusalCooldown).ToString("c", CultureInfo.InvariantCulture),
        };
        if (!policy.Overflow) gateway["Gateway__Picking__Overflow__Enabled"] = "false";
        env["gateway"] = gateway;
        return env;
    }

    /// <summary>What the simulator side runs with (product defaults, in virtual seconds).</summary>
    private static readonly HybridServing.ClusterSimulator.Configuration.SimulationOptions SimulatorDefaults = new();

    private static string Invariant(double x) => x.ToString(CultureInfo.InvariantCulture);

    public ValueTask DisposeAsync() => _stack.DisposeAsync();
}
