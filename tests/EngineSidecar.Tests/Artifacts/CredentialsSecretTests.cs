using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Sidecar;
using HybridServing.EngineSidecar.Artifacts;
using HybridServing.EngineSidecar.Tests.Infrastructure;
using HybridServing.KubeApiTestServer;
using HybridServing.TestKit;
using k8s;
using k8s.Models;
using static HybridServing.EngineSidecar.Tests.Infrastructure.StateWaits;

namespace HybridServing.EngineSidecar.Tests.Artifacts;

/// <summary>
/// AdapterSpec.credentials_secret (the ControlPlane's rendering of spec.credentialsSecretRef): the sidecar reads the
/// Secret from the Kubernetes API test server over real HTTP and downloads a private adapter from a real s3rver with
/// it, into a real MockEngine. The sidecar itself has no S3 credentials configured.
/// </summary>
public sealed class CredentialsSecretTests(S3rverFixture s3) : IClassFixture<S3rverFixture>
{
    private static V1Secret Secret(string ns, string name, Dictionary<string, string> data) =>
        new() { Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns }, StringData = data };

    [Fact]
    public async Task A_private_S3_adapter_loads_with_the_named_Secret_and_a_missing_or_incomplete_Secret_is_CredentialsMissing()
    {
        using var dir = new TempDirectory("sc-creds");
        var src = TestAdapters.Write(dir.Path, "priv", rank: 8);
        using (var upload = new AmazonS3Client(new BasicAWSCredentials("S3RVER", "S3RVER"),
                   new AmazonS3Config { ServiceURL = s3.ServiceUrl.ToString(), ForcePathStyle = true, AuthenticationRegion = "us-east-1" }))
            foreach (var file in new[] { PeftAdapter.ConfigFileName, PeftAdapter.SafetensorsFileName })
                await upload.PutObjectAsync(new PutObjectRequest
                {
                    BucketName = S3rverFixture.Bucket, Key = $"sidecar-private/{file}", FilePath = Path.Combine(src, file), UseChunkEncoding = false,
                });

        await using var api = await KubeApiServer.StartAsync();
        using var client = api.CreateClient();
        var keys = new Dictionary<string, string>
        {
            ["AWS_ACCESS_KEY_ID"] = "S3RVER", ["AWS_SECRET_ACCESS_KEY"] = "S3RVER", ["AWS_ENDPOINT_URL"] = s3.ServiceUrl.ToString(), ["AWS_REGION"] = "us-east-1",
        };
        await client.CoreV1.CreateNamespacedSecretAsync(Secret("default", "s3-creds", keys), "default");
        await client.CoreV1.CreateNamespacedSecretAsync(Secret("default", "half", new() { ["AWS_ACCESS_KEY_ID"] = "S3RVER" }), "default");
        await client.CoreV1.CreateNamespacedSecretAsync(Secret("default", "wrong", new(keys) { ["AWS_ACCESS_KEY_ID"] = "NOT-THE-KEY" }), "default");

        await using var engine = await MockEngineHost.StartAsync("--model", "test/tiny", "--enable-lora", "--max-loras", "4", "--max-lora-rank", "16");
        var settings = SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"));
        settings["Sidecar:Kubernetes:ApiServerUrl"] = api.Url;
        settings["Sidecar:S3:ForcePathStyle"] = "true";
        await using var host = await SidecarHost.StartAsync(settings);

        var source = $"s3://{S3rverFixture.Bucket}/sidecar-private";
        AdapterSpec With(string name, string secret) => new() { Name = name, Source = source, CredentialsSecret = secret };
        await host.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest
        {
            Generation = 1,
            Adapters = { With("priv", "default/s3-creds"), With("absent", "default/no-such"), With("half", "default/half"), With("wrong", "default/wrong"), With("bad-ref", "no-namespace") },
        });
        var state = await host.WaitForStateAsync(s => s.Adapter("priv")?.Phase == AdapterPhase.Loaded
            && new[] { "absent", "half", "wrong", "bad-ref" }.All(n => s.Adapter(n)?.Phase == AdapterPhase.Failed), TimeSpan.FromSeconds(30), "priv loaded, the others failed");

        Assert.Equal((FailureReasons.CredentialsMissing, "secret 'default/no-such' named by spec.credentialsSecretRef does not exist."),
            (state.Adapter("absent")!.Reason, state.Adapter("absent")!.Message));
        Assert.Equal((FailureReasons.CredentialsMissing, "Secret 'default/half' named by spec.credentialsSecretRef has no AWS_SECRET_ACCESS_KEY."),
            (state.Adapter("half")!.Reason, state.Adapter("half")!.Message));
        Assert.Equal(FailureReasons.Unauthorized, state.Adapter("wrong")!.Reason); // the Secret's keys are what s3rver saw
        Assert.Equal(FailureReasons.CredentialsMissing, state.Adapter("bad-ref")!.Reason);
        Assert.Contains("namespace/name", state.Adapter("bad-ref")!.Message);
        using (var http = new HttpClient { BaseAddress = engine.BaseUrl })
            Assert.Contains("\"priv\"", await http.GetStringAsync("v1/models"));

        // One get per download, never a list or a watch; no value in any log line.
        Assert.Contains(api.Requests, r => r is { Resource: "secrets", Verb: "get", Namespace: "default", Name: "s3-creds" });
        Assert.DoesNotContain(api.Requests, r => r.Resource == "secrets" && r.Verb is "list" or "watch");
        Assert.DoesNotContain(CapturingLoggerProvider.Lines, l => l.Contains("S3RVER", StringComparison.Ordinal));

        // The Secret is created after the failure: the next attempt uses it, no restart.
        await client.CoreV1.CreateNamespacedSecretAsync(Secret("default", "no-such", keys), "default");
        await host.WaitForPhaseAsync("absent", AdapterPhase.Loaded, TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task A_reference_on_a_sidecar_without_Kubernetes_access_fails_clearly()
    {
        var credentials = new SourceCredentials(null);
        var e = await Assert.ThrowsAsync<ArtifactException>(() => credentials.ReadAsync("default/s3-creds", CancellationToken.None));
        Assert.Equal(FailureReasons.CredentialsMissing, e.Reason);
        Assert.Contains("Sidecar:Kubernetes:ApiServerUrl", e.Message);
    }
}
