from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def instance_list(request):
    return render(request, "panel/home.html")


@login_required
def operation_list(request):
    return render(request, "panel/home.html")
