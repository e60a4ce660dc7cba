using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using HybridServing.TestKit;

namespace HybridServing.Reliability.Tests;

/// <summary>
/// The local home as the AppHost wires it, every part its own process started from its built dll
/// (so a trial can SIGKILL any one): MockEngines, one EngineSidecar per engine, the ControlPlane
/// watching a folder of LoraAdapter YAML, and the Gateway with one tenant. Ports come from TestKit.Ports
/// and stay the same across a restart.
/// </summary>
public sealed class LocalStack : IAsyncDisposable
{
    public const string BaseModel = "test/tiny";
    public const string ApiKey = "trial-key";

    /// <summary>MockEngine log lines that mark one runtime load / unload (its LoraEndpoints, EventId 100/102).</summary>
    public const string LoadedLine = "Loaded LoRA adapter ";
    public const string UnloadedLine = "Unloaded LoRA adapter ";

    private readonly TempDirectory _dir = new("reliability");
    private readonly List<ChildProcess> _owned = [];

    private LocalStack() => Directory.CreateDirectory(Manifests);

    public string Manifests => _dir.Combine("manifests");
    public List<ChildProcess> Engines { get; } = [];
    public List<ChildProcess> Sidecars { get; } = [];
    public ChildProcess ControlPlane { get; private set; } = null!;
    public ChildProcess Gateway { get; private set; } = null!;

    /// <summary>A client of the gateway with the tenant's key.</summary>
    public HttpClient Client { get; private set; } = null!;

    /// <summary>
    /// Starts <paramref name="engines"/> engines and sidecars, the ControlPlane and the Gateway, with the
    /// adapters <paramref name="adapters"/> written as PEFT folders and one LoraAdapter naming them,
    /// <paramref name="replicas"/> replicas each.
    /// </summary>
    /// <remarks><paramref name="coldAdapters"/> go into a second LoraAdapter with <c>loadOnStartup: false</c>: placed only when a request asks (a cold start).</remarks>
    public static async Task<LocalStack> StartAsync(int engines, string[] adapters, int replicas, string[]? coldAdapters = null,
        IReadOnlyDictionary<string, string>? controlPlaneEnvironment = null)
    {
        var stack = new LocalStack();
        try
        {
            var repo = Path.Combine(stack.Manifests, "adapters");
            foreach (var a in adapters.Concat(coldAdapters ?? [])) TestAdapters.Write(repo, a, 8, BaseModel);
            stack.WriteLoraAdapter("trial", adapters, replicas, loadOnStartup: true);
            if (coldAdapters is { Length: > 0 }) stack.WriteLoraAdapter("cold", coldAdapters, 1, loadOnStartup: false);
            for (var i = 0; i < engines; i++) await stack.StartEngineAndSidecarAsync(i);
            await stack.StartControlPlaneAsync(controlPlaneEnvironment);
            await stack.StartGatewayAsync();
            return stack;
        }
        catch
        {
            await stack.DisposeAsync();
            throw;
        }
    }

    private void WriteLoraAdapter(string name, string[] adapters, int replicas, bool loadOnStartup) =>
        File.WriteAllText(Path.Combine(Manifests, name + ".yaml"), $"""
            apiVersion: hybridserving.io/v1alpha1
            kind: LoraAdapter
            metadata:
              name: {name}
              namespace: default
            spec:
              baseModel: {BaseModel}
              adapterSource:
                type: local
                repository: ./adapters
                adapters: [{string.Join(", ", adapters)}]
              deploymentConfig:
                loadOnStartup: {(loadOnStartup ? "true" : "false")}
                replicas:
                  min: {replicas}
                  max: {replicas}
            """);

    private async Task StartEngineAndSidecarAsync(int i)
    {
        var node = await EngineNode.StartAsync(i, _dir, Manifests);
        Own(node.Engine);
        Own(node.Sidecar);
        Engines.Add(node.Engine);
        Sidecars.Add(node.Sidecar);
        SidecarGrpc.Add(node.SidecarGrpc);
    }

    private List<Uri> SidecarGrpc { get; } = [];

    /// <summary>The ControlPlane's AdapterRouter (gRPC) address, fixed for the stack's life.</summary>
    public Uri ControlPlaneGrpc { get; private set; } = null!;

    private async Task StartControlPlaneAsync(IReadOnlyDictionary<string, string>? extra)
    {
        var http = Ports.GetFree();
        ControlPlaneGrpc = Url(Ports.GetFree());
        var env = new Dictionary<string, string>
        {
            ["Kestrel__Endpoints__Http__Url"] = Url(http).ToString(),
            ["Kestrel__Endpoints__Grpc__Url"] = ControlPlaneGrpc.ToString(),
            ["Kestrel__Endpoints__Grpc__Protocols"] = "Http2",
            ["ControlPlane__Home"] = "Local",
            ["ControlPlane__ManifestsPath"] = Manifests,
            ["ControlPlane__AllowedLocalRoots__0"] = Manifests,
        };
        for (var i = 0; i < Engines.Count; i++)
        {
            env[$"ControlPlane__Engines__{i}__Name"] = Engines[i].Name;
            env[$"ControlPlane__Engines__{i}__Node"] = $"node-{i}";
            env[$"ControlPlane__Engines__{i}__SidecarUrl"] = SidecarGrpc[i].ToString();
            env[$"ControlPlane__Engines__{i}__Labels__pool"] = "default";
        }
        foreach (var (k, v) in extra ?? new Dictionary<string, string>()) env[k] = v;
        ControlPlane = await ChildProcess.StartAsync("controlplane", Dll("ControlPlane"), [], Url(http), env);
        Own(ControlPlane);
    }

    private async Task StartGatewayAsync()
    {
        var port = Ports.GetFree();
        Gateway = await ChildProcess.StartAsync("gateway", Dll("Gateway"), [], Url(port), new Dictionary<string, string>
        {
            ["ASPNETCORE_URLS"] = Url(port).ToString().TrimEnd('/'),
            ["services__controlplane__grpc__0"] = ControlPlaneGrpc.ToString(),
            ["Gateway__Tenants__0__Name"] = "trial",
            ["Gateway__Tenants__0__ApiKey"] = ApiKey,
            ["Gateway__Tenants__0__Namespaces__0"] = "default",
            // A cold start that cannot reach the ControlPlane gives up after this (then 503 + Retry-After).
            ["Gateway__ColdStart__Timeout"] = "00:00:03",
        });
        Own(Gateway);
        Client = new HttpClient { BaseAddress = Gateway.Url, Timeout = TimeSpan.FromSeconds(60) };
        Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
    }

    private void Own(ChildProcess process) => _owned.Add(process);

    /// <summary>The adapters an engine reports in its own <c>/v1/models</c> (null while it does not answer).</summary>
    public static async Task<HashSet<string>?> EngineAdaptersAsync(ChildProcess engine)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            using var doc = JsonDocument.Parse(await client.GetStringAsync(new Uri(engine.Url, "v1/models")));
            return [.. doc.RootElement.GetProperty("data").EnumerateArray()
                .Where(m => m.TryGetProperty("parent", out var p) && p.ValueKind == JsonValueKind.String)
                .Select(m => m.GetProperty("id").GetString()!)];
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    /// <summary>Waits (bounded, generous) until <paramref name="condition"/> holds; returns how long it took.</summary>
    public static async Task<TimeSpan> WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < timeout)
        {
            if (await condition()) return watch.Elapsed;
            await Task.Delay(25);
        }
        throw new TimeoutException($"Not within {timeout.TotalSeconds:0} s: {what}");
    }

    /// <summary>Waits until every engine holds every adapter it should (placement done, routable at the gateway).</summary>
    public async Task WaitPlacedAsync(IReadOnlyList<string> adapters, int replicas, TimeSpan timeout)
    {
        await WaitUntilAsync(async () =>
        {
            var held = await Task.WhenAll(Engines.Select(EngineAdaptersAsync));
            if (!adapters.All(a => held.Count(h => h?.Contains(a) == true) == replicas)) return false;
            using var models = await Client.GetAsync("v1/models");
            var text = await models.Content.ReadAsStringAsync();
            return models.IsSuccessStatusCode && adapters.All(a => text.Contains($"\"{a}\"", StringComparison.Ordinal));
        }, timeout, $"{string.Join(", ", adapters)} on {replicas} engines and in the gateway's /v1/models");
    }

    /// <summary>A chat completion request for <paramref name="model"/>.</summary>
    public static HttpRequestMessage Chat(string model, bool stream, int maxTokens = 16) =>
        new(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent(JsonSerializer.Serialize(new
            {
                model,
                messages = new[] { new { role = "user", content = "hello" } },
                max_tokens = maxTokens,
                stream,
            }), Encoding.UTF8, "application/json"),
        };

    internal static string Dll(string project)
    {
        // tests/Reliability.Tests/bin/<Configuration>/<tfm>/: the services are built in the same configuration.
        var tfmDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = tfmDir.Parent!.Name;
        for (var dir = tfmDir; dir is not null; dir = dir.Parent)
        {
            if (!File.Exists(Path.Combine(dir.FullName, "HybridServing.sln"))) continue;
            var dll = Path.Combine(dir.FullName, project, "bin", configuration, tfmDir.Name, $"HybridServing.{project}.dll");
            return File.Exists(dll) ? dll : throw new FileNotFoundException($"{dll} is missing: build tests/Reliability.Tests (it builds the services).", dll);
        }
        throw new DirectoryNotFoundException($"No HybridServing.sln above {AppContext.BaseDirectory}.");
    }

    /// <summary>The end of a body or stream, for failure messages.</summary>
    public static string Tail(string text) => text.Length <= 300 ? text : text[^300..];

    /// <summary>The sidecar's <c>/status</c> adapters: name → phase (null while it does not answer).</summary>
    public static async Task<Dictionary<string, string>?> SidecarAdaptersAsync(ChildProcess sidecar)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            using var doc = JsonDocument.Parse(await client.GetStringAsync(new Uri(sidecar.Url, "status")));
            return doc.RootElement.GetProperty("adapters").EnumerateArray()
                .ToDictionary(a => a.GetProperty("name").GetString()!, a => a.GetProperty("phase").GetString()!, StringComparer.Ordinal);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    internal static Uri Url(int port) => new($"http://127.0.0.1:{port}/");

    public async ValueTask DisposeAsync()
    {
        Client?.Dispose();
        for (var i = _owned.Count - 1; i >= 0; i--) await _owned[i].DisposeAsync();
        _dir.Dispose();
    }
}
