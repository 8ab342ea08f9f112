"""The panel's URL map plus one plain page that only renders base.html, so banner tests
do not depend on what other apps' pages fetch from DCDN."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import path

from panel.urls import urlpatterns as panel_urlpatterns


@login_required
def plain_page(request):
    return render(request, "base.html")


urlpatterns = [path("_probe/", plain_page), *panel_urlpatterns]
