using System.Text.Json;
using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Tests.Infrastructure;
using HybridServing.KubeApiTestServer;
using HybridServing.TestKit;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using static HybridServing.ControlPlane.Tests.Kubernetes.KubeHarness;

namespace HybridServing.ControlPlane.Tests.Sources;

/// <summary>
/// The ControlPlane on the Kubernetes home with known source credentials — a Hub token, S3 keys (refused by the
/// store) and a signed http URL — discovering adapters that succeed and fail: no secret appears in any log line
/// (Debug and up), span, <c>/metrics</c>, <c>/v1/status</c>, LoraAdapter status or Kubernetes event, nor in what the sidecar is sent
/// (the signed URL excepted: the sidecar must fetch it).
/// </summary>
public sealed class SecretLeakTests(S3rverFixture s3) : IClassFixture<S3rverFixture>, IAsyncLifetime
{
    private const string HfToken = "hf_KnownSecretToken7c1f9a";
    private const string S3KeyId = "AKIAKNOWNSECRETKEY42";
    private const string S3Secret = "KnownS3SecretAccessKey/9z8y7x";
    private const string Signature = "KnownSignedUrlSecret5d4c3b";

    private readonly SecretScan _scan = new(HfToken, S3KeyId, S3Secret, Signature);
    private KubeApiServer _server = null!;
    private ArtifactServer _hub = null!;
    private FakeSidecar _sidecar = null!;
    private WebApplication? _app;

    public async Task InitializeAsync()
    {
        _server = await KubeApiServer.StartAsync();
        _hub = await ArtifactServer.StartAsync();
        _sidecar = new FakeSidecar("vllm-0", "node-0");
        await _sidecar.StartAsync();
        _server.Seed(EnginePod(_sidecar.Name, ip: "127.0.0.1", port: _sidecar.Url.Port.ToString(), node: "node-0"));
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        await _sidecar.DisposeAsync();
        await _hub.DisposeAsync();
        await _server.DisposeAsync();
        _scan.Dispose();
    }

    [Fact]
    public async Task Source_credentials_never_appear_in_logs_spans_metrics_status_or_events()
    {
        foreach (var prefix in new[] { "org/loras/resolve/v2/sql", "lib/web" })
        {
            _hub.Files[$"{prefix}/{PeftAdapter.ConfigFileName}"] = RemoteFixtures.Config();
            _hub.Files[$"{prefix}/{PeftAdapter.SafetensorsFileName}"] = RemoteFixtures.Safetensors(2048);
        }
        // On the Kubernetes home the ControlPlane reads credentialsSecretRef from the adapter's namespace.
        using var client = _server.CreateClient();
        V1Secret Secret(string name, Dictionary<string, string> data) => new() { Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = Ns }, StringData = data };
        await client.CoreV1.CreateNamespacedSecretAsync(Secret("hf-cred", new() { ["HF_TOKEN"] = HfToken }), Ns);
        await client.CoreV1.CreateNamespacedSecretAsync(Secret("s3-cred", new() { ["AWS_ACCESS_KEY_ID"] = S3KeyId, ["AWS_SECRET_ACCESS_KEY"] = S3Secret }), Ns);
        LoraAdapter Declare(string name, AdapterSource source, string? secret) => new()
        {
            Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = Ns },
            Spec = new LoraAdapterSpec
            {
                BaseModel = "test/tiny", AdapterSource = source,
                CredentialsSecretRef = secret is null ? null : new SecretReference { Name = secret },
            },
        };
        foreach (var adapter in new[]
        {
            Declare("hub-ok", new AdapterSource { Type = AdapterSourceTypes.HuggingFace, Repository = "org/loras", Revision = "v2" }, "hf-cred"),
            Declare("hub-missing", new AdapterSource { Type = AdapterSourceTypes.HuggingFace, Repository = "org/private", Revision = "main" }, "hf-cred"),
            Declare("s3-refused", new AdapterSource { Type = AdapterSourceTypes.S3, Repository = $"{S3rverFixture.Bucket}/team" }, "s3-cred"),
            Declare("http-signed", new AdapterSource { Type = AdapterSourceTypes.Http, Repository = new Uri(_hub.BaseUrl, "lib?sig=" + Signature).ToString(), Adapters = ["web"] }, null),
            Declare("http-signed-missing", new AdapterSource { Type = AdapterSourceTypes.Http, Repository = new Uri(_hub.BaseUrl, "gone?sig=" + Signature).ToString(), Adapters = ["web"] }, null),
        })
            await client.CustomObjects.CreateNamespacedCustomObjectAsync(adapter, LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural);

        var http = new Uri($"http://127.0.0.1:{Ports.GetFree()}");
        _app = await StartAsync(http);

        await WaitUntilAsync(() => _server.Get<LoraAdapter>(Ns, "hub-ok")?.Status?.Phase == LoraAdapterPhases.Ready, "hub-ok Ready", seconds: 30);
        await WaitUntilAsync(() => _server.Get<LoraAdapter>(Ns, "http-signed")?.Status?.Phase == LoraAdapterPhases.Ready, "http-signed Ready", seconds: 30);
        foreach (var failing in new[] { "hub-missing", "s3-refused", "http-signed-missing" })
            await WaitUntilAsync(() => _server.Get<LoraAdapter>(Ns, failing)?.Status?.Conditions?.Any(c => c.Status == "True" && c.Type == "Degraded" || c.Type == "Ready" && c.Status == "False") == true,
                $"{failing} reports its failure", seconds: 30);
        // The credentials were really used: the Hub saw the token, the store refused the keys.
        Assert.Contains(_hub.Authorizations, a => a == "Bearer " + HfToken);
        Assert.Contains(_server.Get<LoraAdapter>(Ns, "s3-refused")!.Status!.Conditions!, c => c.Message.Contains("access denied with the configured credentials", StringComparison.Ordinal));
        // A retry pass (failures are retried with backoff) logs and traces the failure paths again.
        await Task.Delay(1500);

        using var web = new HttpClient { BaseAddress = http };
        _scan.Check("/v1/status", await web.GetStringAsync("/v1/status"));
        _scan.Check("/metrics", await web.GetStringAsync("/metrics"));
        foreach (var name in new[] { "hub-ok", "hub-missing", "s3-refused", "http-signed", "http-signed-missing" })
        {
            _scan.Check($"{name} status", JsonSerializer.Serialize(_server.Get<LoraAdapter>(Ns, name)!.Status));
        }
        var events = _server.List<Eventsv1Event>(Ns);
        Assert.NotEmpty(events);
        foreach (var e in events) _scan.Check($"event {e.Reason} {e.Regarding.Name}", KubernetesJson.Serialize(e));

        // The sidecar is sent the signed URL (it fetches it) but never the Hub token or S3 keys.
        var sent = string.Join("\n", _sidecar.EnsureCalls.Select(c => c.ToString()));
        Assert.Contains(Signature, sent);
        foreach (var secret in new[] { HfToken, S3KeyId, S3Secret }) Assert.DoesNotContain(secret, sent);

        if (_scan.Problems(minLogLines: 50, minSpans: 5) is { } problems) Assert.Fail(problems);
    }

    private async Task<WebApplication> StartAsync(Uri http)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:Http:Url"] = http.ToString(),
            ["Kestrel:Endpoints:Grpc:Url"] = $"http://127.0.0.1:{Ports.GetFree()}",
            ["Kestrel:Endpoints:Grpc:Protocols"] = "Http2",
            ["ControlPlane:Home"] = "Kubernetes",
            ["ControlPlane:BackoffInitial"] = "00:00:00.200",
            ["ControlPlane:BackoffMax"] = "00:00:00.500",
            ["ControlPlane:ReconnectInitial"] = "00:00:00.100",
            ["ControlPlane:ReconnectMax"] = "00:00:00.500",
            ["ControlPlane:Kubernetes:ApiServerUrl"] = _server.Url,
            ["ControlPlane:Kubernetes:LeaderElection"] = "false",
            ["ControlPlane:Kubernetes:SnapshotDebounce"] = "00:00:00.010",
            ["ControlPlane:HubEndpoint"] = _hub.BaseUrl.ToString(),
            ["ControlPlane:S3:ServiceUrl"] = s3.ServiceUrl.ToString(),
            ["ControlPlane:Sources:Http:AllowedHosts:0"] = "127.0.0.1",
            // Every log on, the framework's HttpClient and request logs too (at Debug by default): none may carry a secret.
            ["Logging:LogLevel:Default"] = "Debug",
        });
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        builder.Logging.AddProvider(_scan);
        builder.AddServiceDefaults();
        builder.AddControlPlane();
        var app = builder.Build();
        app.MapControlPlane();
        app.MapDefaultEndpoints();
        await app.StartAsync();
        return app;
    }
}
