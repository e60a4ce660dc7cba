using Microsoft.Extensions.DependencyInjection;
using System.Net.Http.Json;
using System.Text.Json;
using HybridServing.Contracts.Resources;
using HybridServing.TestKit;
using k8s;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HybridServing.ControlPlane.Tests.Infrastructure;

/// <summary>The ControlPlane started the way Program.cs starts it, on two real Kestrel endpoints on 127.0.0.1.</summary>
internal sealed class ControlPlaneHost : IAsyncDisposable
{
    private ControlPlaneHost(WebApplication app, Uri http, Uri grpc)
    {
        App = app;
        HttpUrl = http;
        GrpcUrl = grpc;
        Http = new HttpClient { BaseAddress = http, Timeout = TimeSpan.FromSeconds(30) };
    }

    public WebApplication App { get; }
    public Uri HttpUrl { get; }
    public Uri GrpcUrl { get; }
    public HttpClient Http { get; }

    public static async Task<ControlPlaneHost> StartAsync(string manifestsPath, IEnumerable<FakeSidecar> sidecars,
        IDictionary<string, IDictionary<string, string>>? labels = null, IDictionary<string, string?>? extra = null,
        Action<IServiceCollection>? services = null)
    {
        var httpPort = Ports.GetFree();
        var grpcPort = Ports.GetFree();
        var config = new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:Http:Url"] = $"http://127.0.0.1:{httpPort}",
            ["Kestrel:Endpoints:Grpc:Url"] = $"http://127.0.0.1:{grpcPort}",
            ["Kestrel:Endpoints:Grpc:Protocols"] = "Http2",
            ["ControlPlane:Home"] = "Local",
            ["ControlPlane:ManifestsPath"] = manifestsPath,
            ["ControlPlane:ManifestPollInterval"] = "00:00:00.500",
            ["ControlPlane:BackoffInitial"] = "00:00:01",
            ["ControlPlane:BackoffMax"] = "00:00:08",
            ["ControlPlane:ReconnectInitial"] = "00:00:00.100",
            ["ControlPlane:ReconnectMax"] = "00:00:00.500",
            ["ControlPlane:EngineGracePeriod"] = "00:00:02",
        };
        var i = 0;
        foreach (var s in sidecars)
        {
            config[$"ControlPlane:Engines:{i}:Name"] = s.Name;
            config[$"ControlPlane:Engines:{i}:Node"] = s.Info.NodeName;
            config[$"ControlPlane:Engines:{i}:SidecarUrl"] = s.Url.ToString();
            config[$"ControlPlane:Engines:{i}:Labels:pool"] = "default";
            if (labels?.TryGetValue(s.Name, out var l) == true)
                foreach (var (k, v) in l) config[$"ControlPlane:Engines:{i}:Labels:{k}"] = v;
            i++;
        }
        foreach (var (k, v) in extra ?? new Dictionary<string, string?>()) config[k] = v;

        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(config);
        builder.Logging.ClearProviders();
        if (Environment.GetEnvironmentVariable("CP_TEST_LOG") == "1") builder.Logging.AddConsole();
        builder.AddServiceDefaults();
        services?.Invoke(builder.Services);
        builder.AddControlPlane();
        var app = builder.Build();
        app.MapControlPlane();
        app.MapDefaultEndpoints(mapMetrics: false);
        await app.StartAsync();
        return new ControlPlaneHost(app, new Uri($"http://127.0.0.1:{httpPort}"), new Uri($"http://127.0.0.1:{grpcPort}"));
    }

    public async Task<LoraAdapter?> GetAsync(string name, string ns = "default")
    {
        using var response = await Http.GetAsync($"/apis/hybridserving.io/v1alpha1/namespaces/{ns}/loraadapters/{name}");
        if (response.StatusCode == System.Net.HttpStatusCode.NotFound) return null;
        response.EnsureSuccessStatusCode();
        return KubernetesJson.Deserialize<LoraAdapter>(await response.Content.ReadAsStringAsync());
    }

    /// <summary>Polls the status API until <paramref name="condition"/> holds (the control plane is asynchronous by nature).</summary>
    public async Task<LoraAdapter> WaitForAsync(string name, Func<LoraAdapter, bool> condition, string ns = "default", int timeoutSeconds = 15)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        LoraAdapter? last = null;
        while (DateTime.UtcNow < deadline)
        {
            last = await GetAsync(name, ns);
            if (last is not null && condition(last)) return last;
            await Task.Delay(50);
        }
        throw new TimeoutException($"LoraAdapter {ns}/{name} did not reach the expected state in {timeoutSeconds} s. Last: {(last is null ? "absent" : KubernetesJson.Serialize(last.Status))}");
    }

    public async Task<JsonDocument> GetJsonAsync(string path) => JsonDocument.Parse(await Http.GetStringAsync(path));

    public static async Task WaitUntilAsync(Func<bool> condition, string what, int timeoutSeconds = 15)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out waiting until {what}");
            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}

internal static class Manifests
{
    public static string Write(string folder, string fileName, string yaml)
    {
        var path = Path.Combine(folder, fileName);
        File.WriteAllText(path + ".tmp", yaml);
        File.Move(path + ".tmp", path, overwrite: true);
        return path;
    }

    public static string Adapter(string name, string repository, string? pattern = null, IEnumerable<string>? adapters = null,
        string baseModel = TestAdapters.TinyModel, string extraSpec = "", string ns = "default") =>
        $"""
        apiVersion: hybridserving.io/v1alpha1
        kind: LoraAdapter
        metadata:
          name: {name}
          namespace: {ns}
        spec:
          baseModel: {baseModel}
          adapterSource:
            type: local
            repository: {repository}
        {(pattern is null ? "" : $"    pattern: \"{pattern}\"\n")}{(adapters is null ? "" : "    adapters: [" + string.Join(", ", adapters) + "]\n")}{extraSpec}
        """;
}
