using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Resources;
using HybridServing.KubeApiTestServer;
using HybridServing.TestKit;
using k8s;
using k8s.Models;
using Xunit.Abstractions;

namespace HybridServing.ClusterShape.Tests;

/// <summary>
/// Installs <c>k8s/</c> as the README says and runs it: every Deployment's containers as this repository's processes,
/// each pod in a network namespace of its own (its own 127.0.0.1 and address on a bridge), with the env, args, ports,
/// probes and mounted files the manifests give (see <see cref="Cluster"/>), against the Kubernetes API test server over
/// HTTPS holding the applied objects. Then a private S3 adapter (s3rver with credentials, named by
/// <c>credentialsSecretRef</c>) becomes Ready, a streamed chat completion with a key from the keys Secret goes through
/// the gateway Service to an engine pod, and the README's uninstall leaves nothing behind.
/// </summary>
public sealed class ClusterShapeTests(ITestOutputHelper output)
{
    private const string Ns = "hybridserving";
    private const string BaseModel = "meta-llama/Llama-3.1-8B-Instruct";

    [SkippableFact]
    public async Task The_k8s_manifests_run_as_pods_serve_a_private_S3_adapter_through_the_gateway_and_uninstall_leaves_nothing()
    {
        var unavailable = PodNetwork.Unavailable();
        Skip.If(unavailable is not null, unavailable);
        var repo = RepositoryRoot();
        using var work = new TempDirectory("cluster-shape");
        File.SetUnixFileMode(work.Path, (UnixFileMode)0b111_101_101); // pods run as the images' non-root user
        using var network = PodNetwork.Create();
        await using var api = await KubeApiServer.StartAsync(new KubeApiServerOptions { Https = true, ListenAddress = network.NodeAddress, RequireNamespaces = true });
        using var client = api.CreateClient();
        using var kubectl = new Kubectl(api) { WorkingDirectory = repo };
        // The object store by DNS name, as an in-cluster MinIO or a private S3 endpoint is reached (not by IP).
        const string S3Host = "s3.storage.svc.cluster.local";
        var s3 = new S3rverFixture { Address = network.NodeAddress.ToString(), ServiceEndpoint = "storage.svc.cluster.local" };
        await s3.InitializeAsync();
        var s3Endpoint = new UriBuilder(s3.ServiceUrl) { Host = S3Host }.Uri;
        var cluster = new Cluster(api, network, repo, work.Path, new Dictionary<string, IPAddress> { [S3Host] = network.NodeAddress });
        var clock = System.Diagnostics.Stopwatch.StartNew();
        void Phase(string what) => output.WriteLine($"{clock.Elapsed.TotalSeconds,6:F1} s  {what}");
        try
        {
            // Install, as the README says: the manifests, then the gateway's keys Secret.
            var rendered = KubernetesYaml.LoadAllFromString(await kubectl.RunAsync("kustomize", "k8s/"));
            var replicas = rendered.OfType<V1Deployment>().ToDictionary(d => d.Name(), d => d.Spec.Replicas ?? 1);
            await kubectl.RunAsync("apply", "-k", "k8s/");
            foreach (var ns in new[] { Ns, "default" }) // what the cluster publishes into every namespace
                await client.CoreV1.CreateNamespacedConfigMapAsync(new V1ConfigMap
                {
                    Metadata = new V1ObjectMeta { Name = "kube-root-ca.crt", NamespaceProperty = ns },
                    Data = new Dictionary<string, string> { ["ca.crt"] = api.CertificateAuthorityPem! },
                }, ns);
            var apiKey = "sk-cluster-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
            await ApplyAsync(kubectl, work, "api-keys.yaml", $$"""
                apiVersion: v1
                kind: Secret
                metadata:
                  name: hybridserving-api-keys
                  namespace: {{Ns}}
                stringData:
                  api-keys.yaml: |
                    tenants:
                      - name: team-a
                        apiKeySha256: {{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(apiKey)))}}
                        namespaces: [default]
                """);

            Phase("k8s/ applied");
            await cluster.StartAsync(Ns);
            await WaitAsync(() => Task.FromResult(cluster.Pods.All(p => p.Ready)), TimeSpan.FromSeconds(120),
                () => "every pod Ready; not ready: " + string.Join(", ", cluster.Pods.Where(p => !p.Ready).Select(p => p.Name)), cluster);
            Assert.Equal(replicas, cluster.Pods.GroupBy(p => p.Deployment).ToDictionary(g => g.Key, g => g.Count()));

            Phase("every pod Ready");

            // A private adapter in S3, named by a LoraAdapter whose credentialsSecretRef holds the keys.
            var adapter = TestAdapters.Write(work.Path, "sql-private", rank: 8, baseModel: BaseModel);
            using (var upload = new AmazonS3Client(new BasicAWSCredentials("S3RVER", "S3RVER"),
                       new AmazonS3Config { ServiceURL = s3.ServiceUrl.ToString(), ForcePathStyle = true, AuthenticationRegion = "us-east-1" }))
                foreach (var file in new[] { PeftAdapter.ConfigFileName, PeftAdapter.SafetensorsFileName })
                    await upload.PutObjectAsync(new PutObjectRequest
                    {
                        BucketName = S3rverFixture.Bucket, Key = $"private/sql-private/{file}", FilePath = Path.Combine(adapter, file), UseChunkEncoding = false,
                    });
            await ApplyAsync(kubectl, work, "adapter.yaml", $$"""
                apiVersion: v1
                kind: Secret
                metadata:
                  name: s3-creds
                  namespace: default
                stringData:
                  AWS_ACCESS_KEY_ID: S3RVER
                  AWS_SECRET_ACCESS_KEY: S3RVER
                  AWS_ENDPOINT_URL: {{s3Endpoint}}
                  AWS_REGION: us-east-1
                ---
                apiVersion: hybridserving.io/v1alpha1
                kind: LoraAdapter
                metadata:
                  name: private-sql
                  namespace: default
                spec:
                  baseModel: {{BaseModel}}
                  credentialsSecretRef:
                    name: s3-creds
                  adapterSource:
                    type: s3
                    repository: {{S3rverFixture.Bucket}}/private
                  deploymentConfig:
                    loadOnStartup: true
                """);
            string? lastStatus = null;
            await WaitAsync(async () =>
            {
                var status = (JsonElement)await client.CustomObjects.GetNamespacedCustomObjectAsync("hybridserving.io", "v1alpha1", "default", "loraadapters", "private-sql");
                lastStatus = status.TryGetProperty("status", out var s) ? s.ToString() : "(none)";
                return s.ValueKind == JsonValueKind.Object && s.TryGetProperty("conditions", out var conditions)
                    && conditions.EnumerateArray().Any(c => c.GetProperty("type").GetString() == "Ready" && c.GetProperty("status").GetString() == "True");
            }, TimeSpan.FromSeconds(90), () => "LoraAdapter private-sql Ready; status: " + lastStatus, cluster);
            Phase("LoraAdapter Ready");

            // A streamed chat completion through the gateway Service, with the key from the Secret, served by an engine pod.
            var gateway = new Uri($"http://{cluster.ClusterIp("hybridserving-gateway")}/"); // the Service's port 80
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(gateway, "v1/chat/completions"))
            {
                Content = new StringContent("""{"model":"sql-private","stream":true,"max_tokens":8,"messages":[{"role":"user","content":"Top 5 customers by revenue"}]}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {body}");
            Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
            var events = body.Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => l[6..]).ToList();
            Assert.Equal("[DONE]", events[^1]);
            Assert.True(events.Count >= 3, body);
            Assert.All(events[..^1], e => Assert.Equal("sql-private", JsonDocument.Parse(e).RootElement.GetProperty("model").GetString()));
            var engine = Assert.Single(cluster.PodsOf("hybridserving-engine"), p => p.Name == response.Headers.GetValues("x-hybridserving-engine").Single());
            using (var direct = new HttpClient())
                Assert.Contains("\"sql-private\"", await direct.GetStringAsync($"http://{engine.Address}:8000/v1/models"));
            using (var anonymous = new HttpRequestMessage(HttpMethod.Get, new Uri(gateway, "v1/models")))
                Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(anonymous)).StatusCode);

            Phase("chat completion streamed");

            // Uninstall in the README's order: the adapters (unloaded, finalizer released), then the kustomization.
            await kubectl.RunAsync("delete", "loraadapters", "--all", "-A", "--wait=true", "--timeout=60s");
            Assert.Empty(api.List<LoraAdapter>());
            foreach (var pod in cluster.PodsOf("hybridserving-engine"))
                using (var direct = new HttpClient())
                    Assert.DoesNotContain("\"sql-private\"", await direct.GetStringAsync($"http://{pod.Address}:8000/v1/models"));
            Phase("adapters deleted and unloaded");
            await kubectl.RunAsync("delete", "-k", "k8s/", "--wait=true", "--timeout=60s");
            await cluster.SyncAsync(Ns);
            Assert.Equal("", (await kubectl.RunAsync("get", "-k", "k8s/", "--ignore-not-found", "-o", "name")).Trim());
            Assert.Empty(api.List<V1Pod>(Ns));
            Assert.All(cluster.Pods.SelectMany(p => p.Containers), c => Assert.True(c.Process!.HasExited, $"{c.Spec.Name} still runs"));

            Phase("kustomization deleted, pods stopped");
            Assert.Empty(cluster.Failures);
            Assert.DoesNotContain(cluster.AllLogLines, l => l.Contains(apiKey, StringComparison.Ordinal) || l.Contains("S3RVER", StringComparison.Ordinal));
        }
        catch
        {
            output.WriteLine($"Every container's log: {SaveLogs(cluster)}");
            output.WriteLine(string.Join("\n", cluster.Failures));
            output.WriteLine(cluster.Logs(15));
            throw;
        }
        finally
        {
            if (Environment.GetEnvironmentVariable("CLUSTER_SHAPE_KEEP_LOGS") == "1") output.WriteLine($"Every container's log: {SaveLogs(cluster)}");
            await cluster.DisposeAsync();
            await s3.DisposeAsync();
        }
    }

    /// <summary>Every container's log, kept after the run (on failure, or with CLUSTER_SHAPE_KEEP_LOGS=1).</summary>
    private static string SaveLogs(Cluster cluster)
    {
        var logs = Path.Combine(Path.GetTempPath(), "cluster-shape-logs", DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture));
        cluster.SaveLogs(logs);
        return logs;
    }

    private static async Task ApplyAsync(Kubectl kubectl, TempDirectory work, string name, string yaml)
    {
        var path = Path.Combine(work.Path, name);
        await File.WriteAllTextAsync(path, yaml);
        await kubectl.RunAsync("apply", "-f", path);
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string> what, Cluster cluster)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (!cluster.Failures.IsEmpty) Assert.Fail($"waiting for {what()}: {string.Join("\n", cluster.Failures)}");
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out waiting for {what()}");
            await Task.Delay(250);
        }
    }

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "HybridServing.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("HybridServing.sln not found above the test's output.");
    }
}
