using HybridServing.ControlPlane.Engines;

namespace HybridServing.ControlPlane.Tests.Engines;

public sealed class EngineUrlsTests
{
    [Theory]
    [InlineData("http://127.0.0.1:8000", "http://localhost:8000/")]
    [InlineData("http://localhost:8000", "http://[::1]:8000")]
    [InlineData("http://127.0.0.1:8000/", "HTTP://LOCALHOST:8000")]
    [InlineData("http://0.0.0.0:8000", "http://127.0.0.1:8000")]
    [InlineData("http://engine-0.pool.svc:80/", "http://Engine-0.Pool.svc")]
    [InlineData("https://10.0.0.7", "https://10.0.0.7:443/")]
    [InlineData("http://10.0.0.7:8000/vllm/", "http://10.0.0.7:8000/vllm")]
    [InlineData(" http://127.0.0.1:8000 ", "http://localhost:8000")]
    public void The_same_engine_written_differently_matches(string a, string b)
    {
        Assert.True(EngineUrls.Same(a, b), $"{EngineUrls.Canonical(a)} vs {EngineUrls.Canonical(b)}");
        Assert.True(EngineUrls.Same(b, a));
    }

    [Theory]
    [InlineData("http://127.0.0.1:8000", "http://127.0.0.1:8001")]
    [InlineData("http://127.0.0.1:8000", "https://127.0.0.1:8000")]
    [InlineData("http://localhost:8000", "http://10.0.0.7:8000")]
    [InlineData("http://10.0.0.7:8000", "http://10.0.0.8:8000")]
    [InlineData("http://10.0.0.7:8000/a", "http://10.0.0.7:8000/b")]
    [InlineData("http://10.0.0.7:80", "http://10.0.0.7:8080")]
    public void Different_engines_do_not_match(string a, string b) => Assert.False(EngineUrls.Same(a, b));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("engine-0:8000")]
    [InlineData("/v1/models")]
    [InlineData("ftp://127.0.0.1:8000")]
    [InlineData("http://")]
    public void What_is_not_an_absolute_http_url_has_no_canonical_form_and_matches_nothing(string? url)
    {
        Assert.Null(EngineUrls.Canonical(url));
        Assert.False(EngineUrls.Same(url, url));
    }

    [Fact]
    public void The_canonical_form_names_scheme_host_port_and_path()
    {
        Assert.Equal("http://loopback:8000", EngineUrls.Canonical("http://localhost:8000/"));
        Assert.Equal("https://engine.example:443/v1", EngineUrls.Canonical("HTTPS://Engine.Example/v1/"));
    }
}
