using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Sidecar;
using HybridServing.EngineSidecar.Tests.Infrastructure;
using HybridServing.TestKit;

namespace HybridServing.EngineSidecar.Tests.Artifacts;

/// <summary>
/// A sidecar with a known Hub token, S3 keys (refused by the store), an engine API key and a signed http URL, loading
/// adapters that succeed and fail: no secret appears in any log line (Debug and up), span, <c>/status</c>,
/// <c>/metrics</c> or the state it streams to the ControlPlane (whose messages become LoraAdapter status) beyond the
/// sources the ControlPlane itself sent.
/// </summary>
public sealed class SecretLeakTests(S3rverFixture s3) : IClassFixture<S3rverFixture>
{
    private const string HfToken = "hf_SidecarKnownToken_3e8d1c";
    private const string S3KeyId = "AKIASIDECARKNOWNKEY7";
    private const string S3Secret = "SidecarKnownS3Secret/+6b5a4";
    private const string EngineKey = "engine-SidecarKnownKey-9f0e";
    private const string Signature = "SidecarKnownSignature2a1b0c";

    [Fact]
    public async Task Credentials_never_appear_in_logs_spans_status_metrics_or_streamed_state()
    {
        using var scan = new SecretScan(HfToken, S3KeyId, S3Secret, EngineKey, Signature);
        using var dir = new TempDirectory("sidecar-secrets");
        var adapter = TestAdapters.Write(dir.Combine("src"), "sql");
        await using var files = await ArtifactServer.StartAsync();
        foreach (var prefix in new[] { "org/loras/resolve/main", "lib/web" })
            foreach (var file in new[] { PeftAdapter.ConfigFileName, PeftAdapter.SafetensorsFileName })
                files.Files[$"{prefix}/{file}"] = await File.ReadAllBytesAsync(Path.Combine(adapter, file));
        var credentials = Directory.CreateDirectory(dir.Combine("s3-cred")).FullName;
        await File.WriteAllTextAsync(Path.Combine(credentials, "aws_access_key_id"), S3KeyId);
        await File.WriteAllTextAsync(Path.Combine(credentials, "aws_secret_access_key"), S3Secret);

        await using var engine = await MockEngineHost.StartAsync("--model", TestAdapters.TinyModel, "--enable-lora", "--max-loras", "4", "--api-key", EngineKey);
        var settings = SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"));
        settings["Sidecar:EngineApiKey"] = EngineKey;
        settings["Sidecar:Hub:Endpoint"] = files.BaseUrl.ToString();
        settings["Sidecar:Hub:Token"] = HfToken;
        settings["Sidecar:S3:ServiceUrl"] = s3.ServiceUrl.ToString();
        settings["Sidecar:S3:CredentialsDirectory"] = credentials;
        // Every log on, the framework's HttpClient logs of downloads too (at Debug by default): none may carry a secret.
        settings["Logging:LogLevel:Default"] = "Debug";
        await using var host = await SidecarHost.StartAsync(settings, logs: scan);

        await host.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest
        {
            Adapters =
            {
                StateWaits.Spec("hub-ok", "hf://org/loras"),
                StateWaits.Spec("hub-missing", "hf://org/private"),
                StateWaits.Spec("s3-refused", $"s3://{S3rverFixture.Bucket}/team/x"),
                StateWaits.Spec("http-signed", new Uri(files.BaseUrl, "lib/web?sig=" + Signature).ToString()),
                StateWaits.Spec("http-signed-missing", new Uri(files.BaseUrl, "gone/web?sig=" + Signature).ToString()),
            },
        });
        var state = await host.WaitForStateAsync(s => s.Adapter("hub-ok")?.Phase == AdapterPhase.Loaded && s.Adapter("http-signed")?.Phase == AdapterPhase.Loaded
            && s.Adapters.Count(a => a.Phase == AdapterPhase.Failed) == 3, TimeSpan.FromSeconds(30), "two loaded, three failed");
        // The credentials were really used: the Hub saw the token, the engine accepted the engine key (it loaded), the store refused the keys.
        Assert.Contains(files.Authorizations, a => a == "Bearer " + HfToken);
        Assert.Contains("InvalidAccessKeyId", state.Adapter("s3-refused")!.Message + state.Adapter("s3-refused")!.Reason, StringComparison.OrdinalIgnoreCase);
        await Task.Delay(1500); // retries log and trace the failure paths again

        // The state streamed to the ControlPlane echoes each adapter's source as it was sent (the ControlPlane matches
        // it against its desired set), a signed URL included; everything else in it (messages, reasons) is scanned.
        var reported = state.Clone();
        foreach (var a in reported.Adapters)
        {
            Assert.Equal(a.Name.StartsWith("http-signed", StringComparison.Ordinal), a.Source.Contains(Signature, StringComparison.Ordinal));
            a.Source = "";
        }
        scan.Check("streamed state", reported.ToString());
        using var web = new HttpClient { BaseAddress = host.HttpUrl };
        scan.Check("/status", await web.GetStringAsync("/status"));
        scan.Check("/metrics", await web.GetStringAsync("/metrics"));
        if (scan.Problems(minLogLines: 20, minSpans: 3) is { } problems) Assert.Fail(problems);
    }
}
